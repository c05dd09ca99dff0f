"""Triton compositor for C > 4 channels: forward in two passes, backward in three, per chunk of tiles.

Forward: ``triton_seq._seq_fwd_kernel`` in its WIDE mode walks each tile one Gaussian at a time
without channels and writes every list entry's weights w[e, p] (alpha times transmittance) to a
scratch row, then ``_compose_kernel`` forms out[p, slice] = sum_e w[e, p] f[e, slice] per channel
slice as a matmul (the batched forward recomputed the alphas, their cumulative products and the
block barriers behind them in every channel slice's program).

The batched backward (``triton_impl``) does everything in one program per tile: per batch of 16
Gaussians it reloads the tile's [256, C] output gradient twice (G . f over all channels, then
w^T G per channel slice), holds two matmuls' tiles beside the batch's (one program per SM, spills
on sm_90) and moves its [256, 16] tiles between register layouts behind block barriers. Here:

1. ``_dots_kernel``, per (tile, block of pixels): D[e, p] = G[p] . f[e] for every list entry e up
   to the forward's stopping point, as a plain matmul of the pixels' gradient rows with the
   entries' feature rows (``tl.dot``, FMA or TF32x3 products), into a scratch row of 256 per entry;
2. ``triton_seq._seq_bwd_kernel`` in its WIDE mode, per tile: the one-Gaussian-at-a-time backward
   of the few-channel path with D read from the scratch row instead of summed from channels; it
   writes each entry's weights w[e, p] back over its row and all the Gaussian-wise gradients but
   the features';
3. ``_feature_grad_kernel``, per (tile, channel slice): dF[e] = sum_p w[e, p] G[p, slice], a matmul of
   the scratch rows with the slice of G (loaded once per program), added with relaxed atomics.

The scratch holds 1 KB per list entry: in the forward for every entry (where a tile stops is known
only after its walk), in the backward up to each tile's stopping point in the forward (the entries
behind it never showed: one host sync for their count). Tiles are processed in chunks whose rows
fit ``SCRATCH_BYTES`` (one more sync for the per-tile counts, only when they do not fit at once).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from mnemovision.kernels._backend import triton_autotune_enabled
from mnemovision.kernels._launch import INTERPRETED, TunedKernel
from mnemovision.kernels.gaussians.triton_seq import _feature_row, _tile_pixel

SCRATCH_BYTES = 512 << 20  # scratch per chunk of tiles: 1 KB (256 fp32 pixels) per list entry; the garden view (0.3 GB) in one chunk, so every tile walks at once
ROW = 256  # pixels per tile, one scratch row per list entry


@triton.jit
def _entry_range(Offsets, Stops, RowStart, tile, ROW0):
    """(first entry, stop, base) of a tile's list: entries start .. stop - 1, entry e in scratch row base + e."""
    start = tl.load(Offsets + tile)
    stop = tl.load(Stops + tile).to(start.dtype)
    return start, stop, tl.load(RowStart + tile) - ROW0 - start


@triton.jit
def _entry_rows(FlatIds, offs_l, stop, VN, NF, SHARED_FEATS: tl.constexpr):
    """(feature rows, valid) of list entries ``offs_l`` (valid: before ``stop``)."""
    valid = offs_l < stop
    pair = tl.load(FlatIds + offs_l, mask=valid, other=0)
    return _feature_row(pair, VN, NF, SHARED_FEATS), valid


@triton.jit
def _dots_kernel(
    Offsets, Stops, RowStart, FlatIds, Values, GradOut, Scratch,
    H, W, TILES_X, N_TILES, C, OUT_C, VN, NF, TILE0, ROW0,
    SHARED_FEATS: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_C: tl.constexpr, PREC: tl.constexpr,
):
    """Scratch[row(e), p] = G[p] . f[e] for tile TILE0 + program 0's entries e before Stops[tile]
    and its BLOCK_P pixels of block program 1 (G the output gradient over the C feature channels;
    row(e) = RowStart[tile] - ROW0 + e - start)."""
    tile = TILE0 + tl.program_id(0)
    offs_p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    pix, inside, _x, _y = _tile_pixel(tile, offs_p, N_TILES, TILES_X, H, W, 16)
    start, stop, base = _entry_range(Offsets, Stops, RowStart, tile, ROW0)
    for e0 in range(start, stop, BLOCK_L):
        offs_l = e0 + tl.arange(0, BLOCK_L)
        fid, valid = _entry_rows(FlatIds, offs_l, stop, VN, NF, SHARED_FEATS)
        acc = tl.zeros([BLOCK_P, BLOCK_L], dtype=tl.float32)
        for c0 in range(0, C, BLOCK_C):
            offs_c = c0 + tl.arange(0, BLOCK_C)
            g = tl.load(GradOut + pix[:, None] * OUT_C + offs_c[None, :], mask=inside[:, None] & (offs_c[None, :] < C), other=0.0)
            f = tl.load(Values + fid[:, None] * C + offs_c[None, :], mask=valid[:, None] & (offs_c[None, :] < C), other=0.0)
            acc += tl.dot(g, tl.trans(f), input_precision=PREC)
        tl.store(Scratch + (base + offs_l[None, :]) * 256 + offs_p[:, None], acc, mask=valid[None, :])


@triton.jit
def _feature_grad_kernel(
    Offsets, Stops, RowStart, FlatIds, GradOut, Scratch, DValues,
    H, W, TILES_X, N_TILES, C, OUT_C, VN, NF, TILE0, ROW0,
    SHARED_FEATS: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_C: tl.constexpr, PREC: tl.constexpr,
):
    """DValues[f[e], slice] += sum_p w[e, p] G[p, slice] for tile TILE0 + program 0's entries before
    Stops[tile] (w: their scratch rows, as in ``_dots_kernel``) and channel slice program 1 (its G
    loaded once)."""
    tile = TILE0 + tl.program_id(0)
    offs_p = tl.arange(0, 256)
    pix, inside, _x, _y = _tile_pixel(tile, offs_p, N_TILES, TILES_X, H, W, 16)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    g = tl.load(GradOut + pix[:, None] * OUT_C + offs_c[None, :], mask=inside[:, None] & (offs_c[None, :] < C), other=0.0)
    start, stop, base = _entry_range(Offsets, Stops, RowStart, tile, ROW0)
    for e0 in range(start, stop, BLOCK_L):
        offs_l = e0 + tl.arange(0, BLOCK_L)
        fid, valid = _entry_rows(FlatIds, offs_l, stop, VN, NF, SHARED_FEATS)
        w = tl.load(Scratch + (base + offs_l[:, None]) * 256 + offs_p[None, :], mask=valid[:, None], other=0.0)
        d_feat = tl.dot(w, g, input_precision=PREC)
        tl.atomic_add(DValues + fid[:, None] * C + offs_c[None, :], d_feat, mask=valid[:, None] & (offs_c[None, :] < C), sem="relaxed")


@triton.jit
def _compose_kernel(
    Offsets, Stops, RowStart, FlatIds, Values, Scratch, Out,
    H, W, TILES_X, N_TILES, C, OUT_C, VN, NF, TILE0, ROW0,
    SHARED_FEATS: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_C: tl.constexpr, PREC: tl.constexpr,
):
    """Out[p, slice] = sum_e w[e, p] f[e, slice] for tile TILE0 + program 0's entries before
    Stops[tile] (w: their scratch rows, written by the forward walk) and channel slice program 1."""
    tile = TILE0 + tl.program_id(0)
    offs_p = tl.arange(0, 256)
    pix, inside, _x, _y = _tile_pixel(tile, offs_p, N_TILES, TILES_X, H, W, 16)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    start, stop, base = _entry_range(Offsets, Stops, RowStart, tile, ROW0)
    acc = tl.zeros([256, BLOCK_C], dtype=tl.float32)
    for e0 in range(start, stop, BLOCK_L):
        offs_l = e0 + tl.arange(0, BLOCK_L)
        fid, valid = _entry_rows(FlatIds, offs_l, stop, VN, NF, SHARED_FEATS)
        w = tl.load(Scratch + (base + offs_l[:, None]) * 256 + offs_p[None, :], mask=valid[:, None], other=0.0)
        f = tl.load(Values + fid[:, None] * C + offs_c[None, :], mask=valid[:, None] & (offs_c[None, :] < C), other=0.0)
        acc += tl.dot(tl.trans(w), f, input_precision=PREC)
    tl.store(Out + pix[:, None] * OUT_C + offs_c[None, :], acc, mask=inside[:, None] & (offs_c[None, :] < C))


# Candidates (autotuned per channel count on a GPU; the first when the autotuner is off: the H100's
# pick at C = 160, 2026-11-27, bench/RESULTS.md), kept where bench/kernel_resources.py shows no spills
# on sm_90 at C = 160: the feature pass holds its [256, BLOCK_C] slice of G in registers, so with
# TF32x3 products only 16 entries per step fit (32: 0.4-1 KB of spills). The H100 timed the compose
# pass 0.73-1.05 ms, dots 0.51-2.84, features 1.00-1.69 (a 64-channel FMA candidate that spilled
# 1.5 KB under the GPU's Triton 3.6 took 25.6 ms and is gone).
_DOTS_SETTINGS = ((64, 32, 32, "tf32x3", 4, 3), (64, 64, 32, "tf32x3", 8, 3), (128, 32, 32, "tf32x3", 8, 3), (64, 32, 16, "ieee", 4, 3))
_FEATURE_SETTINGS = ((16, 32, "ieee", 4, 3), (16, 32, "tf32x3", 8, 3), (16, 64, "tf32x3", 8, 2))
_COMPOSE_SETTINGS = ((32, 64, "ieee", 8, 3), (16, 32, "tf32x3", 8, 3), (32, 32, "tf32x3", 8, 3), (16, 64, "tf32x3", 8, 2))


def _configs(names: tuple[str, ...], settings) -> list:
    """Autotuner candidates from rows of settings: the values of ``names``, then warps and stages."""
    return [triton.Config(dict(zip(names, row[:-2])), num_warps=row[-2], num_stages=row[-1]) for row in settings]


def compose_configs():
    """Entries per step, channels per program, product precision, warps, stages."""
    return _configs(("BLOCK_L", "BLOCK_C", "PREC"), _COMPOSE_SETTINGS)


def dots_configs():
    """Pixels per program, entries per step, channels per product, product precision, warps, stages."""
    return _configs(("BLOCK_P", "BLOCK_L", "BLOCK_C", "PREC"), _DOTS_SETTINGS)


def feature_configs():
    """Entries per step, channels per program, product precision, warps, stages."""
    return _configs(("BLOCK_L", "BLOCK_C", "PREC"), _FEATURE_SETTINGS)


_dots_tuned = TunedKernel(triton.autotune(dots_configs(), key=["C", "OUT_C"])(_dots_kernel))
_feature_tuned = TunedKernel(triton.autotune(feature_configs(), key=["C", "OUT_C"], reset_to_zero=["DValues"])(_feature_grad_kernel))
_compose_tuned = TunedKernel(triton.autotune(compose_configs(), key=["C", "OUT_C"])(_compose_kernel))


def _interpreter_settings(kind: str) -> dict:
    """Small blocks under the interpreter (the products run in NumPy)."""
    if kind == "dots":
        return {"BLOCK_P": 64, "BLOCK_L": 16, "BLOCK_C": 16, "PREC": "ieee"}
    return {"BLOCK_L": 16, "BLOCK_C": 16, "PREC": "ieee"}


def _launch(tuned, kind: str):
    """(kernel, keyword settings): autotuned on a GPU; fixed otherwise (the autotuned kernel's
    ``launcher``), under the interpreter small blocks, else the first of the autotuner's candidates."""
    if triton_autotune_enabled():
        return tuned, {}
    if INTERPRETED:
        return tuned.launcher, _interpreter_settings(kind)
    return tuned.launcher, tuned.configs[0].all_kwargs()


def scratch_rows(offsets: torch.Tensor, stops: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(first scratch row per tile [n_tiles + 1] int64 (the last: the total), total rows): each tile
    gets a row per list entry before its stopping point. Reads the total back (a host sync)."""
    used = stops.to(torch.int64) - offsets[:-1]
    rows = torch.zeros_like(offsets)
    torch.cumsum(used, 0, out=rows[1:])
    return rows, int(rows[-1]) if rows.numel() > 1 else 0


def chunks(offsets: torch.Tensor, n_entries: int, n_tiles: int, scratch_bytes: int | None = None) -> list[tuple[int, int, int, int]]:
    """Tile chunks (first tile, end tile, first row, rows) whose scratch rows fit ``scratch_bytes``
    (default ``SCRATCH_BYTES``; a tile whose rows alone do not fit is a chunk of its own), with
    ``offsets`` [n_tiles + 1] the tiles' first rows and ``n_entries`` the total. One chunk, without
    reading ``offsets`` back from the device, when all rows fit."""
    per_chunk = max(1, (SCRATCH_BYTES if scratch_bytes is None else scratch_bytes) // (ROW * 4))
    if n_entries <= per_chunk:
        return [(0, n_tiles, 0, n_entries)]
    offs = offsets.tolist()  # the one host sync
    out, t0 = [], 0
    while t0 < n_tiles:
        t1 = t0 + 1
        while t1 < n_tiles and offs[t1 + 1] - offs[t0] <= per_chunk:
            t1 += 1
        out.append((t0, t1, offs[t0], offs[t1] - offs[t0]))
        t0 = t1
    return out
