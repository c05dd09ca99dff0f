"""Triton tile compositing for the Gaussian rasterizer (forward and backward).

What is fused: per 16x16 tile, the depth-sorted Gaussians are taken in batches of ``BLOCK_G``;
alpha = min(0.99, o exp(-q/2)) for all 256 pixels x BLOCK_G Gaussians, the transmittance by a
cumulative product along the batch (3DGS's early stop once it would fall below 1e-4, and the skip
below 1/255), then ``weights @ features``: for more than 4 channels a matmul per channel slice (fp32
products as plain FMA or as three TF32 tensor-core products, both about fp32 accurate), for 1 to 4
channel by channel sums (a matmul tile would be mostly padding; the one-Gaussian-at-a-time kernels
of ``triton_seq`` can take C <= 4 instead, ``SEQUENTIAL_SMALL_C``, off by default since the H100 timed
them slower at C = 3). A tile stops walking its list once
every in-image pixel has stopped (forward and backward). The walk is software-pipelined: the ids of
batch i + 2 and the parameters and features of batch i + 1 are loaded while batch i is composited
(the list -> Gaussian indirection would otherwise stall every batch), each batch's parameters as one
[G, 16] block (``_packed_params``). Channels are tiled across
programs (any C from 1 to 512 in one call). Each pair's feature row is derived in the kernel
(features shared across views, or per pair for SH colours). Projection and binning are
``triton_project``. Batch size, warps, channel slice and matmul precision are autotuned per channel
count on a GPU (``_small_c_configs``, ``_matmul_configs``).

The backward recomputes the forward front to back (no division drift), forms
dL/d alpha_i = T_i (G . f_i) - (G . S_i - g_A T_final) / (1 - alpha_i) with S_i the colour still to
come (G . S_i = G . out - prefix sums of w_j (G . f_j)), and scatters per-Gaussian gradients with
atomics: 2-D means, conics, opacities, features (weights^T @ G), depths, and (only when asked for)
|per-pixel dL/d mean2d|; its per-Gaussian sums over pixels go through one multi-operand reduction
(one exchange between warps) instead of one each, and into the gradients as one [G, 16] block
(``_scatter_batch``).

Tiles are [G, P] (the batch's Gaussians x the tile's pixels): per-pixel values are [1, P] rows,
per-Gaussian ones [G, 1] columns, reductions keep their axis (every tensor in the loops is 2-D, so
all of them share the tiles' layout: 1-D vectors were moved between layouts through shared memory at
every batch). Laid out so, each thread holds whole columns of the batch (the scans and sums over
the batch stay in its registers) and the pixel rows loaded from the output gradient share the
tiles' layout. With [P, G] tiles the sm_90 code (Triton 3.6, ``bench/kernel_resources.py``, C = 3)
summed over the batch by warp shuffles (54-390 shuffle instructions in the forward's candidates, 4-6
now) and the backward moved five whole tiles a batch between layouts (its shared memory 4,096 B ->
768 at batches of 8).
Under ``TRITON_INTERPRET=1`` the same kernels run on CPU.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from mnemovision.kernels._backend import triton_autotune_enabled
from mnemovision.kernels._launch import INTERPRETED, TunedKernel, as_dtype, carve, cdiv, contiguous_as
from mnemovision.kernels.gaussians import triton_seq, triton_wide
from mnemovision.kernels.gaussians.ref import T_MIN, add_background, background_grads

BLOCK_G = 16  # Gaussians per batch (a [16, 256] tile of Gaussian x pixel terms per step), fixed under the interpreter
NUM_WARPS = 8
BLOCK_C = 32  # channels per program under the interpreter (on a GPU: autotuned, or _fixed_settings)


T_MIN_C = tl.constexpr(T_MIN)

# Layout rule of these kernels: every tensor is 2-D. Tiles are [G, P], per-pixel values [1, P] rows,
# per-Gaussian values [G, 1] columns, and reductions keep their axis, so the whole loop shares the
# layout of its tiles (1-D vectors would be moved between layouts through shared memory at every batch).


@triton.jit
def _batch_ids(b0, end, FlatIds, VN, NF, SHARED_FEATS: tl.constexpr, BLOCK_G: tl.constexpr):
    """Pair ids, feature rows (``triton_seq._feature_row``) and validity [G, 1] of the intersections
    b0 .. b0 + BLOCK_G of a tile."""
    offs_g = b0 + tl.arange(0, BLOCK_G)[:, None]
    valid_g = offs_g < end
    pair = tl.load(FlatIds + offs_g, mask=valid_g, other=0)
    return pair, triton_seq._feature_row(pair, VN, NF, SHARED_FEATS), valid_g


@triton.jit
def _transmittance(alpha, t_in, done):
    """Within a batch (t_in, done [1, P]): (t_before [G, P], kept [G, P], t_out [1, P], done [1, P])."""
    one_minus = 1.0 - alpha
    t_after = t_in * tl.cumprod(one_minus, axis=0)
    keep = (t_after >= T_MIN_C) & (done == 0)
    t_before = t_after / one_minus
    t_out = tl.min(tl.where(keep, t_after, t_in), axis=0, keep_dims=True)
    stopped = tl.max(tl.where(keep, 0, 1), axis=0, keep_dims=True)
    return t_before, keep, t_out, tl.maximum(done, stopped)


@triton.jit
def _zero_row(row):
    """Zeros shaped (and laid out) like ``row``, computed from it: 0 x a clamp of it (no NaN or inf
    survives the clamp, so the product is exactly 0; a compiler cannot fold it to a constant)."""
    return 0.0 * tl.minimum(tl.maximum(row, 0.0), 1.0)


@triton.jit
def _tile_live(done, inside):
    """1 while some in-image pixel of the tile still takes light, else 0: the tile's list is walked
    only that far (3DGS stops a tile once every pixel's transmittance fell below 1e-4)."""
    return tl.max(tl.where(inside, 1 - done, 0))


@triton.jit
def _tile_pixels(tile, N_TILES, TILES_X, H, W, TILE: tl.constexpr):
    """The 256 pixels of a (view, tile) index as [1, P]: (flat pixel index, in-image mask, centre x, centre y)."""
    return triton_seq._tile_pixel(tile, tl.arange(0, TILE * TILE)[None, :], N_TILES, TILES_X, H, W, TILE)


@triton.jit
def _program_tile(TileOrder, ORDERED: tl.constexpr):
    """The (view, tile) of this program: TileOrder[program] with ORDERED (the tiles longest list
    first, ``triton_project.isect_tiles(order=True)``), else the program index itself."""
    if ORDERED:
        return tl.load(TileOrder + tl.program_id(0)).to(tl.int32)
    return tl.program_id(0)


@triton.jit
def _store_channel(Out, pix, inside, value, ch: tl.constexpr, C, OUT_C):
    tl.store(Out + pix * OUT_C + ch, value, mask=inside & (ch < C))


# A batch's per-Gaussian values travel as [G, 16] blocks. Loaded or atomically added as separate
# [G, 1] columns, each column took its own layout (Triton lays a memory op out by its pointers' shape)
# and moved to or from the tiles' layout (where every thread holds the whole batch) through shared
# memory behind barriers, at every batch: the backward's sm_90 code (Triton 3.6, C = 3) held 47
# barriers. As blocks, one move each way per batch; the columns come out of and go into a block by
# split and join, which stay in registers. With the backward's geometry and channel sums in one
# reduction (``_batch_sums``), ``bench/kernel_resources.py`` before -> after: backward 47 -> 14-26
# barriers at batches of 4 to 16, 11 -> 14 at batches of 2; forward 23 -> 7-19, 5 -> 7.


@triton.jit
def _packed_params(pair, fid, valid_g, Means2d, Conics, Opac, Depths, Values, C, HAS_DEPTH: tl.constexpr, SMALL_C: tl.constexpr):
    """The batch's parameters as one [G, 16] block: columns 0-1 the 2-D mean, 2-4 the conic, 5 the
    opacity, 6 the depth (0 without HAS_DEPTH), 8-11 the SMALL_C features (0 past C), the rest 0."""
    col = tl.arange(0, 16)[None, :]
    ptr = tl.where(col < 2, Means2d + pair * 2 + col, tl.where(col < 5, Conics + pair * 3 + (col - 2), tl.where(col == 5, Opac + pair, tl.where(col == 6, Depths + pair, Values + fid * C + (col - 8)))))
    use = (col < 6) | ((col == 6) & HAS_DEPTH) | ((col >= 8) & (col - 8 < SMALL_C))
    return tl.load(ptr, mask=valid_g & use, other=0.0)


@triton.jit
def _split4(x):
    """[..., 2, 2] -> its four [...] parts in row-major order of the last two dims."""
    a, b = tl.split(x)
    a0, a1 = tl.split(a)
    b0, b1 = tl.split(b)
    return a0, b0, a1, b1


@triton.jit
def _unpack(packed):
    """``_packed_params``' block [G, 16] -> (mean x, y, conic a, b, c, opacity, depth, features 0-3),
    each [G, 1]: row-major, column 8 h + 4 i + 2 j + k of the block sits at [h, i, j, k] of its
    [2, 2, 2, 2] view; ``_split4`` peels (j, k), then (h, i)."""
    v = tl.reshape(packed, [packed.shape[0], 1, 2, 2, 2, 2])
    q0, q1, q2, q3 = _split4(v)
    h00, h10, h20, h30 = _split4(q0)
    h01, h11, h21, h31 = _split4(q1)
    h02, h12, h22, h32 = _split4(q2)
    h03, h13, h23, h33 = _split4(q3)
    return h00, h01, h02, h03, h10, h11, h12, h20, h21, h22, h23


@triton.jit
def _composite_fwd_kernel(
    Offsets, FlatIds, Means2d, Conics, Opac, Values, Depths, Out, Alpha,
    H, W, TILES_X, N_TILES, C, OUT_C, VN, NF, TileOrder,
    SHARED_FEATS: tl.constexpr, SMALL_C: tl.constexpr, HAS_DEPTH: tl.constexpr, ORDERED: tl.constexpr, PREC: tl.constexpr,
    TILE: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """One program: one (view, tile) x one BLOCK_C slice of the channels. With SMALL_C > 0 (C <= 4)
    the channels are summed one by one (a matmul would be mostly padding). Software-pipelined: while
    batch i is composited, the ids of batch i + 2 and the parameters and features of batch i + 1 are
    already in flight. Alpha [V H W]: 1 - the final transmittance. ``_program_tile``: which tile."""
    tile = _program_tile(TileOrder, ORDERED)
    pid_c = tl.program_id(1)
    pix, inside, px, py = _tile_pixels(tile, N_TILES, TILES_X, H, W, TILE)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    start = tl.load(Offsets + tile)
    end = tl.load(Offsets + tile + 1)
    t_run = tl.full([1, TILE * TILE], 1.0, dtype=tl.float32)
    done = tl.zeros([1, TILE * TILE], dtype=tl.int32)
    acc = tl.zeros([TILE * TILE, BLOCK_C], dtype=tl.float32)
    a0 = tl.zeros([1, TILE * TILE], dtype=tl.float32)
    a1 = tl.zeros([1, TILE * TILE], dtype=tl.float32)
    a2 = tl.zeros([1, TILE * TILE], dtype=tl.float32)
    a3 = tl.zeros([1, TILE * TILE], dtype=tl.float32)
    acc_d = tl.zeros([1, TILE * TILE], dtype=tl.float32)
    pair, fid, valid_g = _batch_ids(start, end, FlatIds, VN, NF, SHARED_FEATS, BLOCK_G)
    pair_n, fid_n, valid_n = _batch_ids(start + BLOCK_G, end, FlatIds, VN, NF, SHARED_FEATS, BLOCK_G)
    packed = _packed_params(pair, fid, valid_g, Means2d, Conics, Opac, Depths, Values, C, HAS_DEPTH, SMALL_C)
    if SMALL_C > 0:
        feats = tl.zeros([BLOCK_G, 1], dtype=tl.float32)
    else:
        feats = tl.load(Values + fid * C + offs_c[None, :], mask=valid_g & (offs_c[None, :] < C), other=0.0)
    b0 = start
    live = _tile_live(done, inside)
    while (b0 < end) & (live > 0):
        # in flight during this batch: ids two batches ahead, parameters and features one ahead
        pair_nn, fid_nn, valid_nn = _batch_ids(b0 + 2 * BLOCK_G, end, FlatIds, VN, NF, SHARED_FEATS, BLOCK_G)
        packed_n = _packed_params(pair_n, fid_n, valid_n, Means2d, Conics, Opac, Depths, Values, C, HAS_DEPTH, SMALL_C)
        if SMALL_C > 0:
            feats_n = feats
        else:
            feats_n = tl.load(Values + fid_n * C + offs_c[None, :], mask=valid_n & (offs_c[None, :] < C), other=0.0)
        mx, my, ca, cb, cc, op, z, f0, f1, f2, f3 = _unpack(packed)
        alpha, ok, raw, g, dx, dy = triton_seq._alpha(px, py, mx, my, ca, cb, cc, op)
        t_before, keep, t_run_next, done = _transmittance(alpha, t_run, done)
        w = tl.where(keep, alpha * t_before, 0.0)
        if SMALL_C > 0:
            a0 += tl.sum(w * f0, axis=0, keep_dims=True)
            if SMALL_C > 1:
                a1 += tl.sum(w * f1, axis=0, keep_dims=True)
            if SMALL_C > 2:
                a2 += tl.sum(w * f2, axis=0, keep_dims=True)
            if SMALL_C > 3:
                a3 += tl.sum(w * f3, axis=0, keep_dims=True)
        else:
            acc += tl.dot(tl.trans(w), feats, input_precision=PREC)
        if HAS_DEPTH:
            acc_d += tl.sum(w * z, axis=0, keep_dims=True)
        t_run = t_run_next
        b0 += BLOCK_G
        live = _tile_live(done, inside)
        valid_g, pair_n, fid_n, valid_n = valid_n, pair_nn, fid_nn, valid_nn
        packed, feats = packed_n, feats_n
    if SMALL_C > 0:
        _store_channel(Out, pix, inside, a0, 0, C, OUT_C)
        if SMALL_C > 1:
            _store_channel(Out, pix, inside, a1, 1, C, OUT_C)
        if SMALL_C > 2:
            _store_channel(Out, pix, inside, a2, 2, C, OUT_C)
        if SMALL_C > 3:
            _store_channel(Out, pix, inside, a3, 3, C, OUT_C)
    else:
        pix_c = tl.trans(pix)  # [P, 1] for the [P, BLOCK_C] matmul tile
        tl.store(Out + pix_c * OUT_C + offs_c[None, :], acc, mask=tl.trans(inside) & (offs_c[None, :] < C))
    if pid_c == 0:
        tl.store(Alpha + pix, 1.0 - t_run, mask=inside)
        if HAS_DEPTH:
            tl.store(Out + pix * OUT_C + C, acc_d, mask=inside)


# The backward's per-Gaussian sums over pixels. Each block-wide sum exchanges its warps' partial
# sums through shared memory behind a barrier; one ``tl.reduce`` of several operands (the combines
# below) makes that exchange once for all of them. The interpreter runs such a reduction element by
# element in Python (a small test's backward went from seconds to minutes), so there each operand
# gets its own ``tl.sum`` (``ONE_REDUCTION``): the same sums.
ONE_REDUCTION = tl.constexpr(not INTERPRETED)


@triton.jit
def _pixel_sums(tiles):
    """Sums over pixels of a tuple of 2 or 6 to 10 [G, P] tiles, each [G, 1]: one reduction, or
    under the interpreter one ``tl.sum`` per tile."""
    if ONE_REDUCTION:
        if len(tiles) == 2:
            return tl.reduce(tiles, 1, _add2, keep_dims=True)
        elif len(tiles) == 6:
            return tl.reduce(tiles, 1, _add6, keep_dims=True)
        elif len(tiles) == 7:
            return tl.reduce(tiles, 1, _add7, keep_dims=True)
        elif len(tiles) == 8:
            return tl.reduce(tiles, 1, _add8, keep_dims=True)
        elif len(tiles) == 9:
            return tl.reduce(tiles, 1, _add9, keep_dims=True)
        else:
            return tl.reduce(tiles, 1, _add10, keep_dims=True)
    else:
        return tuple(tl.sum(t, 1, keep_dims=True) for t in tiles)


@triton.jit
def _add2(a0, a1, b0, b1):
    return a0 + b0, a1 + b1


@triton.jit
def _add6(a0, a1, a2, a3, a4, a5, b0, b1, b2, b3, b4, b5):
    return a0 + b0, a1 + b1, a2 + b2, a3 + b3, a4 + b4, a5 + b5


@triton.jit
def _add7(a0, a1, a2, a3, a4, a5, a6, b0, b1, b2, b3, b4, b5, b6):
    return a0 + b0, a1 + b1, a2 + b2, a3 + b3, a4 + b4, a5 + b5, a6 + b6


@triton.jit
def _add8(a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7):
    return a0 + b0, a1 + b1, a2 + b2, a3 + b3, a4 + b4, a5 + b5, a6 + b6, a7 + b7


@triton.jit
def _add9(a0, a1, a2, a3, a4, a5, a6, a7, a8, b0, b1, b2, b3, b4, b5, b6, b7, b8):
    return a0 + b0, a1 + b1, a2 + b2, a3 + b3, a4 + b4, a5 + b5, a6 + b6, a7 + b7, a8 + b8


@triton.jit
def _add10(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9):
    return a0 + b0, a1 + b1, a2 + b2, a3 + b3, a4 + b4, a5 + b5, a6 + b6, a7 + b7, a8 + b8, a9 + b9


@triton.jit
def _batch_sums(terms, w, g0, g1, g2, g3, SMALL_C: tl.constexpr):
    """The sums over pixels of ``triton_seq._alpha_grads``' six geometry terms and, on the small-C
    path, of w G_ch for the SMALL_C = C channels, in one reduction: ten [G, 1] columns (opacity,
    conic a b c, mean x y, channels 0-3; zeros past C, all four on the matmul path, SMALL_C = 0)."""
    d_op, d_ca, d_cb, d_cc, d_mx, d_my = terms
    if SMALL_C == 0:
        s_op, s_ca, s_cb, s_cc, s_mx, s_my = _pixel_sums((d_op, d_ca, d_cb, d_cc, d_mx, d_my))
        zero = tl.zeros_like(s_op)
        return s_op, s_ca, s_cb, s_cc, s_mx, s_my, zero, zero, zero, zero
    elif SMALL_C == 1:
        s_op, s_ca, s_cb, s_cc, s_mx, s_my, f0 = _pixel_sums((d_op, d_ca, d_cb, d_cc, d_mx, d_my, w * g0))
        zero = tl.zeros_like(s_op)
        return s_op, s_ca, s_cb, s_cc, s_mx, s_my, f0, zero, zero, zero
    elif SMALL_C == 2:
        s_op, s_ca, s_cb, s_cc, s_mx, s_my, f0, f1 = _pixel_sums((d_op, d_ca, d_cb, d_cc, d_mx, d_my, w * g0, w * g1))
        zero = tl.zeros_like(s_op)
        return s_op, s_ca, s_cb, s_cc, s_mx, s_my, f0, f1, zero, zero
    elif SMALL_C == 3:
        s_op, s_ca, s_cb, s_cc, s_mx, s_my, f0, f1, f2 = _pixel_sums((d_op, d_ca, d_cb, d_cc, d_mx, d_my, w * g0, w * g1, w * g2))
        return s_op, s_ca, s_cb, s_cc, s_mx, s_my, f0, f1, f2, tl.zeros_like(s_op)
    else:
        return _pixel_sums((d_op, d_ca, d_cb, d_cc, d_mx, d_my, w * g0, w * g1, w * g2, w * g3))


@triton.jit
def _pack16(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15):
    """Sixteen [G, 1] columns as one [G, 16] block, column k = ck. Joins only add a dimension held
    in registers (no data moves between threads): leaf j of the four-level join tree lands at index
    j with its four bits reversed, hence the leaves' order."""
    t = tl.join(tl.join(tl.join(tl.join(c0, c8), tl.join(c4, c12)), tl.join(tl.join(c2, c10), tl.join(c6, c14))),
                tl.join(tl.join(tl.join(c1, c9), tl.join(c5, c13)), tl.join(tl.join(c3, c11), tl.join(c7, c15))))
    return tl.reshape(t, [c0.shape[0], 16])


@triton.jit
def _scatter_batch(DOpac, DConics, DMeans2d, AbsGrad, DValues, DDepths, pair, fid, valid_g, C, terms, w, g0, g1, g2, g3, g_depth,
                   SMALL_C: tl.constexpr, HAS_DEPTH: tl.constexpr, ABSGRAD: tl.constexpr):
    """A batch's per-Gaussian sums over pixels (``triton_seq._alpha_grads``' six geometry terms, with
    ABSGRAD the two |2-D mean| ones, the SMALL_C channels' w G and with HAS_DEPTH the depth's) added
    to their gradients by one relaxed atomic add of a [G, 16] block (columns: opacity, conic a b c,
    mean x y, |mean| x y, channels 0-3, depth, 3 unused; see the note above ``_packed_params``)."""
    s_op, s_ca, s_cb, s_cc, s_mx, s_my, f0, f1, f2, f3 = _batch_sums(terms, w, g0, g1, g2, g3, SMALL_C)
    zero = tl.zeros_like(s_op)
    a_mx, a_my = zero, zero
    if ABSGRAD:
        a_mx, a_my = _pixel_sums((tl.abs(terms[4]), tl.abs(terms[5])))
    s_z = zero
    if HAS_DEPTH:
        s_z = tl.sum(w * g_depth, axis=1, keep_dims=True)
    sums = _pack16(s_op, s_ca, s_cb, s_cc, s_mx, s_my, a_mx, a_my, f0, f1, f2, f3, s_z, zero, zero, zero)
    col = tl.arange(0, 16)[None, :]
    target = tl.where(col == 0, DOpac + pair, tl.where(col < 4, DConics + pair * 3 + (col - 1), tl.where(col < 6, DMeans2d + pair * 2 + (col - 4),
                      tl.where(col < 8, AbsGrad + pair * 2 + (col - 6), tl.where(col < 12, DValues + fid * C + (col - 8), DDepths + pair)))))
    used = (col < 6) | ((col < 8) & ABSGRAD) | ((col >= 8) & (col < 8 + SMALL_C)) | ((col == 12) & HAS_DEPTH)
    tl.atomic_add(target, sums, mask=valid_g & used, sem="relaxed")


@triton.jit
def _composite_bwd_kernel(
    Offsets, FlatIds, Means2d, Conics, Opac, Values, Depths, Out, Alpha, GradOut, GradA,
    DMeans2d, DConics, DOpac, DValues, DDepths, AbsGrad,
    H, W, TILES_X, N_TILES, C, OUT_C, VN, NF, TileOrder,
    SHARED_FEATS: tl.constexpr, SMALL_C: tl.constexpr, HAS_DEPTH: tl.constexpr, ABSGRAD: tl.constexpr, ORDERED: tl.constexpr,
    PREC: tl.constexpr, TILE: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Recomputes the forward front to back (pipelined like it) and scatters the gradients. Alpha:
    the forward's; GradA [V H W]: dL/d alpha (less G . background where one was added)."""
    tile = _program_tile(TileOrder, ORDERED)
    pix, inside, px, py = _tile_pixels(tile, N_TILES, TILES_X, H, W, TILE)
    start = tl.load(Offsets + tile)
    end = tl.load(Offsets + tile + 1)
    # Per pixel [1, P]: the output gradient's small channels, G . out (out without background), and
    # the final-transmittance term -g_A T_final.
    g_depth = tl.zeros([1, TILE * TILE], dtype=tl.float32)
    if HAS_DEPTH:
        g_depth = tl.load(GradOut + pix * OUT_C + C, mask=inside, other=0.0)
    g0 = tl.zeros([1, TILE * TILE], dtype=tl.float32)
    g1 = tl.zeros([1, TILE * TILE], dtype=tl.float32)
    g2 = tl.zeros([1, TILE * TILE], dtype=tl.float32)
    g3 = tl.zeros([1, TILE * TILE], dtype=tl.float32)
    if SMALL_C > 0:
        g0 = tl.load(GradOut + pix * OUT_C, mask=inside, other=0.0)
        g_out = g0 * tl.load(Out + pix * OUT_C, mask=inside, other=0.0)
        if SMALL_C > 1:
            g1 = tl.load(GradOut + pix * OUT_C + 1, mask=inside, other=0.0)
            g_out += g1 * tl.load(Out + pix * OUT_C + 1, mask=inside, other=0.0)
        if SMALL_C > 2:
            g2 = tl.load(GradOut + pix * OUT_C + 2, mask=inside, other=0.0)
            g_out += g2 * tl.load(Out + pix * OUT_C + 2, mask=inside, other=0.0)
        if SMALL_C > 3:
            g3 = tl.load(GradOut + pix * OUT_C + 3, mask=inside, other=0.0)
            g_out += g3 * tl.load(Out + pix * OUT_C + 3, mask=inside, other=0.0)
        if HAS_DEPTH:
            g_out += g_depth * tl.load(Out + pix * OUT_C + C, mask=inside, other=0.0)
    else:
        g_out = tl.zeros([1, TILE * TILE], dtype=tl.float32)
        for c0 in range(0, OUT_C, BLOCK_C):
            offs_c = c0 + tl.arange(0, BLOCK_C)[:, None]
            m = inside & (offs_c < OUT_C)
            g_out += tl.sum(tl.load(GradOut + pix * OUT_C + offs_c, mask=m, other=0.0) * tl.load(Out + pix * OUT_C + offs_c, mask=m, other=0.0), axis=0, keep_dims=True)
    # d alpha needs G . out - g_A T_final (less the prefix), one row for both
    t_final = 1.0 - tl.load(Alpha + pix, mask=inside, other=0.0)
    g_rest = g_out - tl.load(GradA + pix, mask=inside, other=0.0) * t_final
    # small C: the walk's state starts as zeros derived from a loaded row, not as constants, so it
    # takes the loaded rows' register layout (constants get Triton's default one, and Triton 3.6
    # then computed each batch's alpha and transmittance scan once per layout, twice; sm_90, C = 3,
    # batches of 8 on 4 warps: 3552 -> 3136 SASS instructions, 59 -> 47 barriers). Not for the
    # matmul path, whose candidates spill more so.
    if SMALL_C > 0:
        zero = _zero_row(g_rest)
    else:
        zero = tl.zeros([1, TILE * TILE], dtype=tl.float32)
    t_run = zero + 1.0
    done = zero.to(tl.int32)
    prefix = zero
    pair, fid, valid_g = _batch_ids(start, end, FlatIds, VN, NF, SHARED_FEATS, BLOCK_G)
    pair_n, fid_n, valid_n = _batch_ids(start + BLOCK_G, end, FlatIds, VN, NF, SHARED_FEATS, BLOCK_G)
    packed = _packed_params(pair, fid, valid_g, Means2d, Conics, Opac, Depths, Values, C, HAS_DEPTH, SMALL_C)
    b0 = start
    live = _tile_live(done, inside)
    while (b0 < end) & (live > 0):
        pair_nn, fid_nn, valid_nn = _batch_ids(b0 + 2 * BLOCK_G, end, FlatIds, VN, NF, SHARED_FEATS, BLOCK_G)
        packed_n = _packed_params(pair_n, fid_n, valid_n, Means2d, Conics, Opac, Depths, Values, C, HAS_DEPTH, SMALL_C)
        mx, my, ca, cb, cc, op, z, f0, f1, f2, f3 = _unpack(packed)
        if SMALL_C == 0:
            # D = f . G over all channels first, dF = w G^T in a second pass once w is known: each pass
            # holds one matmul's tiles (one pass holding both, beside the batch's tiles, spills)
            dots = tl.zeros([BLOCK_G, TILE * TILE], dtype=tl.float32)
            for c0 in range(0, C, BLOCK_C):
                cols = c0 + tl.arange(0, BLOCK_C)[None, :]
                feats_blk = tl.load(Values + fid * C + cols, mask=valid_g & (cols < C), other=0.0)
                offs_c = c0 + tl.arange(0, BLOCK_C)[:, None]
                grad_blk = tl.load(GradOut + pix * OUT_C + offs_c, mask=inside & (offs_c < C), other=0.0)
                dots += tl.dot(feats_blk, grad_blk, input_precision=PREC)
        alpha, ok, raw, g, dx, dy = triton_seq._alpha(px, py, mx, my, ca, cb, cc, op)
        t_before, keep, t_run_next, done = _transmittance(alpha, t_run, done)
        keep = keep & inside
        w = tl.where(keep, alpha * t_before, 0.0)
        if SMALL_C > 0:
            dots = g0 * f0  # f . G; the channels past SMALL_C are zeros
            if SMALL_C > 1:
                dots += g1 * f1
            if SMALL_C > 2:
                dots += g2 * f2
            if SMALL_C > 3:
                dots += g3 * f3
        else:
            for c0 in range(0, C, BLOCK_C):
                offs_c = c0 + tl.arange(0, BLOCK_C)[:, None]
                grad_blk = tl.load(GradOut + pix * OUT_C + offs_c, mask=inside & (offs_c < C), other=0.0)
                dfeat = tl.dot(w, tl.trans(grad_blk), input_precision="ieee")  # FMA: PREC is for the f . G pass
                cols = c0 + tl.arange(0, BLOCK_C)[None, :]
                tl.atomic_add(DValues + fid * C + cols, dfeat, mask=valid_g & (cols < C), sem="relaxed")
        if HAS_DEPTH:
            dots += g_depth * z
        wd = w * dots
        incl = prefix + tl.cumsum(wd, axis=0)
        d_alpha = t_before * dots - (g_rest - incl) / (1.0 - alpha)
        terms = triton_seq._alpha_grads(d_alpha, keep, ok, raw, g, dx, dy, ca, cb, cc)
        _scatter_batch(DOpac, DConics, DMeans2d, AbsGrad, DValues, DDepths, pair, fid, valid_g, C, terms, w, g0, g1, g2, g3, g_depth, SMALL_C, HAS_DEPTH, ABSGRAD)
        prefix += tl.sum(wd, axis=0, keep_dims=True)
        t_run = t_run_next
        b0 += BLOCK_G
        live = _tile_live(done, inside)
        pair, fid, valid_g = pair_n, fid_n, valid_n
        pair_n, fid_n, valid_n = pair_nn, fid_nn, valid_nn
        packed = packed_n


SMALL_C_MAX = 4  # up to this many channels the compositor sums them one by one instead of a matmul


# Candidates kept where bench/kernel_resources.py (sm_90) shows no or few spills; fewer Gaussians per
# batch means fewer registers (more tiles per SM) but more batches, which only a GPU can weigh.


def _small_c_configs(backward: bool):
    """Small-C path: Gaussians per batch, warps and a register cap (channel slices and matmul
    precision do not apply). Besides the uncapped ones, caps that fit one more program per SM (sm_90,
    Triton 3.6, C = 3, ``bench/kernel_resources.py``): backward batches of 4 on 4 warps at 168
    registers (195 uncapped; 3 programs per SM instead of 2, no spills), of 8 on 4 warps at 168 (255;
    3 instead of 2, 140 B of spills); forward batches of 8 on 4 warps at 96 (105; 5 instead of 4, no
    spills). More programs hide more of each one's latency (barriers, the transmittance scan) but
    spills cost loads: only a GPU can weigh them. Batches of 2 have the fewest registers (backward
    128 on 4 warps, 4 programs per SM, 98 on 8; forward 56 and 48) and the most instructions per
    Gaussian. (Caps that the [G, 16] blocks made moot were dropped: backward 4 x 8 warps at 128 and
    2 x 4 at 128, forward 8 x 8 at 64; those candidates now fit under them uncapped.)"""
    plain = [(4, 4, None), (8, 4, None), (4, 8, None), (8, 8, None), (16, 8, None), (2, 4, None), (2, 8, None)]
    capped = [(4, 4, 168), (8, 4, 168)] if backward else [(8, 4, 96)]
    return [triton.Config({"BLOCK_G": g, "BLOCK_C": 16, "PREC": "ieee"}, num_warps=w, maxnreg=cap) for g, w, cap in plain + capped]


def _matmul_configs(backward: bool):
    """Matmul path (batches of 16): channel slice, fp32 products as plain FMA ("ieee") or three TF32
    tensor-core products (both about fp32 accurate), warps. The forward recomputes the alphas once per
    slice, so it also tries wide slices; the backward holds two matmuls' tiles, so FMA products
    (fewer registers) and narrow slices, on 8 or 16 warps; its PREC applies to the G . f products
    only (dF = w^T G stays FMA: TF32x3 in both spilled 3.4 KB on sm_90, in G . f alone 144 B)."""
    if backward:
        settings = ((16, "ieee", 8), (16, "ieee", 16), (32, "ieee", 8), (16, "tf32x3", 8))
    else:
        settings = ((16, "ieee", 8), (32, "tf32x3", 8), (32, "tf32x3", 16), (64, "tf32x3", 8))
    return [triton.Config({"BLOCK_G": 16, "BLOCK_C": bc, "PREC": p}, num_warps=w) for bc, p, w in settings]


_FWD_SMALL_C_CONFIGS, _BWD_SMALL_C_CONFIGS = _small_c_configs(backward=False), _small_c_configs(backward=True)
_FWD_MATMUL_CONFIGS, _BWD_MATMUL_CONFIGS = _matmul_configs(backward=False), _matmul_configs(backward=True)


def _pruner(small_configs, matmul_configs):
    """The autotuner keeps the fastest per channel count, among the candidates of the path that
    applies. ``bench/kernel_resources.py`` reports each one's registers and spills without a GPU."""

    def prune(configs, named_args, **kwargs):
        small = kwargs.get("SMALL_C", named_args.get("SMALL_C", 0))
        return list(small_configs if small else matmul_configs)

    return prune


_GRADS = ["DMeans2d", "DConics", "DOpac", "DValues", "DDepths", "AbsGrad"]
_fwd_tuned = TunedKernel(triton.autotune(
    _FWD_SMALL_C_CONFIGS + _FWD_MATMUL_CONFIGS, key=["C", "OUT_C"], prune_configs_by={"early_config_prune": _pruner(_FWD_SMALL_C_CONFIGS, _FWD_MATMUL_CONFIGS)},
)(_composite_fwd_kernel))
# the backward accumulates with atomics: the autotuner zeroes the gradient buffers around its trial runs
_bwd_tuned = TunedKernel(triton.autotune(
    _BWD_SMALL_C_CONFIGS + _BWD_MATMUL_CONFIGS, key=["C", "OUT_C"], prune_configs_by={"early_config_prune": _pruner(_BWD_SMALL_C_CONFIGS, _BWD_MATMUL_CONFIGS)}, reset_to_zero=_GRADS,
)(_composite_bwd_kernel))


# True: C <= 4 composites one Gaussian at a time (``triton_seq``) instead of the batched kernels'
# small-C path. Off: on the H100 (2026-11-27, garden view, C = 3, ``bench/raster_profile.py --small-c
# both``) the batched kernels' best candidates took 0.34 ms forward and 0.89 ms backward, the
# sequential ones' 0.45 and 1.41. The sequential kernels stay for the wide passes (C > 4); since
# then they have one-warp sub-tile candidates for C <= 4 (``triton_seq.FWD_SETTINGS``), not yet timed.
SEQUENTIAL_SMALL_C = False
_seq_fwd_tuned = TunedKernel(triton.autotune(
    triton_seq.configs(backward=False), key=["C", "OUT_C"], prune_configs_by={"early_config_prune": triton_seq.prune},
)(triton_seq._seq_fwd_kernel))
# the WIDE pass rewrites its scratch rows and stopping points in place: restored around each trial
_seq_bwd_tuned = TunedKernel(triton.autotune(
    triton_seq.configs(backward=True), key=["C", "OUT_C"], reset_to_zero=_GRADS, restore_value=["Scratch", "Stops"],
    prune_configs_by={"early_config_prune": triton_seq.prune},
)(triton_seq._seq_bwd_kernel))
# C > 4 takes the two-pass forward and three-pass backward of ``triton_wide``; False selects the
# batched one-program-per-tile kernels (kept while GPU timings compare the two:
# ``bench/raster_profile.py --wide both``)
SPLIT_WIDE = True


# The batched kernels run their tiles longest list first (``triton_project.isect_tiles(order=True)``):
# a kernel lasts until its last program ends, and a long tile started late ends last (on the garden
# views ``bench/tile_order.py``'s schedule model takes 11-16% fewer steps; not yet timed on a GPU).
# False: in index order (to compare on a GPU: ``bench/raster_profile.py --order both``).
LONGEST_FIRST = True


def wants_tile_order(c: int) -> bool:
    """Whether the compositor for C channels reads ``meta["tile_order"]``: the batched kernels do
    (with ``LONGEST_FIRST``), the sequential and wide paths walk the tiles in index order."""
    return LONGEST_FIRST and not _sequential(c) and not _wide(c)


def _sequential(c: int) -> bool:
    return SEQUENTIAL_SMALL_C and c <= triton_seq.MAX_CHANNELS


def _wide(c: int) -> bool:
    return SPLIT_WIDE and c > triton_seq.MAX_CHANNELS


def _fixed_settings(c: int, backward: bool, sequential: bool) -> dict:
    """Launch settings without the autotuner: under the interpreter, small sizes; on a GPU the
    candidates the H100 autotuner preferred (2026-11-27, garden view; batched small C: forward
    batches of 16 on 8 warps, 0.34 ms against 0.37-0.43, backward batches of 8 on 4 warps, 0.89 ms
    against 1.19-1.79; matmul path: 16-channel slices with FMA products on 8 warps); for the
    sequential kernels the first of ``triton_seq``'s candidates (the H100's picks at C = 160)."""
    interp = INTERPRETED
    if sequential:
        if interp:
            return {"BLOCK_G": 4, "NW": 8, "SUB": 1, "num_warps": 8}
        return (_seq_bwd_tuned if backward else _seq_fwd_tuned).configs[0].all_kwargs()
    if interp:
        return {"BLOCK_G": BLOCK_G, "BLOCK_C": BLOCK_C, "PREC": "ieee", "num_warps": NUM_WARPS}
    if 0 < c <= SMALL_C_MAX:
        return {"BLOCK_G": 8, "BLOCK_C": 16, "PREC": "ieee", "num_warps": 4} if backward else {"BLOCK_G": 16, "BLOCK_C": 16, "PREC": "ieee", "num_warps": 8}
    return {"BLOCK_G": 16, "BLOCK_C": 16, "PREC": "ieee", "num_warps": 8}


def _launcher(backward: bool, c: int, const: dict, wide: bool = False):
    """(kernel, keyword arguments) of a compositor launch for C channels: the sequential kernels for
    C <= 4 (``_sequential``) and for the middle pass of the wide backward (``wide``: no channels of
    its own), else the batched ones; autotuned, or fixed (``_fixed_settings``) under the interpreter
    (the autotuner needs a GPU driver) or with ``MNEMOVISION_TRITON_AUTOTUNE=0``."""
    sequential = _sequential(c) or wide
    if sequential:
        kwargs = {k: v for k, v in const.items() if k not in ("SMALL_C", "TILE", "ORDERED")}
        kwargs["NCH"] = 0 if wide else c
        kwargs["WIDE"] = wide
        tuned = _seq_bwd_tuned if backward else _seq_fwd_tuned
    else:
        kwargs = dict(const)
        tuned = _bwd_tuned if backward else _fwd_tuned
    if not triton_autotune_enabled():
        return tuned.launcher, {**kwargs, **_fixed_settings(c, backward, sequential)}
    return tuned, kwargs


def _settings(meta, c: int, has_depth: bool, absgrad: bool | None = None) -> dict:
    """Compile-time settings and shape arguments shared by the forward and backward launches."""
    shared = meta.get("shared_features")
    extra = {} if absgrad is None else {"ABSGRAD": absgrad}  # the backward's switch
    order = meta.get("tile_order")
    return {
        "sizes": (meta["height"], meta["width"], meta["tiles_x"], meta["tiles_x"] * meta["tiles_y"]),
        "features": (max(1, shared[0]), max(1, shared[1])) if shared else (1, 1),  # (V N, N); 1 for an empty scene (no entries to map)
        "const": dict(SHARED_FEATS=shared is not None, SMALL_C=c if 0 < c <= SMALL_C_MAX else 0, HAS_DEPTH=has_depth, TILE=16, ORDERED=order is not None, **extra),
        # the batched kernels' (view, tile) per program: meta["tile_order"], or None for index order
        "order": order,
    }


def _order_arg(st: dict, placeholder: torch.Tensor) -> torch.Tensor:
    """The batched kernels' TileOrder argument: the tile order, or (ORDERED off) any pointer, unread."""
    return placeholder if st["order"] is None else st["order"]


def _pairs(flat_ids):
    return contiguous_as(flat_ids, torch.int64)


class _CompositeTritonFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means2d, conics, opacities, values, depths, background, flat_ids, offsets, meta):
        if meta["tile_size"] != 16:
            raise ValueError(f"the triton compositor uses 16x16 tiles, got tile_size={meta['tile_size']}")
        v, h, w = meta["views"], meta["height"], meta["width"]
        c = values.shape[-1]
        has_depth = depths is not None
        out_c = c + int(has_depth)
        dtype = values.dtype
        f32 = [contiguous_as(t, torch.float32) for t in (means2d, conics, opacities, values)]
        depths32 = contiguous_as(depths, torch.float32) if has_depth else f32[2]
        # every pixel of every tile is written (empty tiles write zeros and alpha = 0); the kernels
        # write alpha = 1 - T_final itself, the output (no 1 - T op after them)
        out = torch.empty(v, h, w, out_c, device=values.device, dtype=torch.float32)
        alpha = torch.empty(v, h, w, 1, device=values.device, dtype=torch.float32)
        pids = _pairs(flat_ids)
        st = _settings(meta, c, has_depth)
        n_tiles = st["sizes"][3]
        one_slice = c <= SMALL_C_MAX  # the channels are not split across programs

        def grid(launch_meta):  # SUB: the sequential kernels' programs per tile
            return (v * n_tiles * launch_meta.get("SUB", 1), 1 if one_slice else cdiv(c, launch_meta["BLOCK_C"]))

        # the wide forward also records where each tile stopped (read by the wide backward)
        stops = torch.empty(v * n_tiles, device=values.device, dtype=torch.int32) if _wide(c) else None
        inputs = (offsets, pids, *f32, depths32, out, alpha)
        if _wide(c):
            _wide_forward(inputs, stops, st, c, out_c, v * n_tiles)
        elif _sequential(c):
            kernel, kwargs = _launcher(False, c, st["const"])
            # Scratch, Stops, RowStart, TILE0, ROW0 serve the wide forward only: placeholders
            kernel[grid](*inputs, alpha, offsets, offsets, *st["sizes"], c, out_c, *st["features"], 0, 0, 1, **kwargs)
        else:
            kernel, kwargs = _launcher(False, c, st["const"])
            kernel[grid](*inputs, *st["sizes"], c, out_c, *st["features"], _order_arg(st, offsets), **kwargs)
        ctx.meta, ctx.has_depth, ctx.dtype, ctx.stops = meta, has_depth, dtype, stops
        ctx.save_for_backward(means2d, conics, opacities, values, depths, background, pids, offsets, out, alpha)
        alpha_out = as_dtype(alpha, dtype)
        render = as_dtype(out, dtype) if background is None else add_background(as_dtype(out, dtype), 1.0 - alpha_out, background)
        return render, alpha_out

    @staticmethod
    def backward(ctx, grad_render, grad_alpha):
        means2d, conics, opacities, values, depths, background, pids, offsets, out, alpha = ctx.saved_tensors
        meta = ctx.meta
        c = values.shape[-1]
        out_c = out.shape[-1]
        grad_render = torch.zeros_like(out) if grad_render is None else contiguous_as(grad_render, torch.float32)
        grad_bg, grad_a = _alpha_grads(grad_render, grad_alpha, alpha, background)
        f32 = [contiguous_as(t, torch.float32) for t in (means2d, conics, opacities, values)]
        depths32 = contiguous_as(depths, torch.float32) if ctx.has_depth else f32[2]
        # one zeroed buffer (one fill) for the atomically summed gradients: the features, then per
        # pair means2d (2), conics (3), opacity, and where asked for depth and |d means2d| (2); the
        # kernels read neither of the last two without HAS_DEPTH / ABSGRAD (d_opac stands in)
        want_abs = bool(meta["absgrad"])
        shapes = (values.shape, means2d.shape, conics.shape, opacities.shape)
        extra = ((depths.shape,) if ctx.has_depth else ()) + (((f32[2].numel(), 2),) if want_abs else ())
        d_values, d_means, d_conics, d_opac, *rest = _zeroed_parts(shapes + extra, out.device)
        d_depths = rest.pop(0) if ctx.has_depth else d_opac
        absgrad = rest.pop(0) if want_abs else d_opac
        st = _settings(meta, c, ctx.has_depth, absgrad=want_abs)
        inputs = (offsets, pids, *f32, depths32, out, alpha, grad_render, grad_a)
        grads = (d_means, d_conics, d_opac, d_values, d_depths, absgrad)
        n_tiles = meta["views"] * st["sizes"][3]
        if _wide(c) and ctx.stops is not None:
            _wide_backward(inputs, grads, ctx.stops, st, c, out_c, n_tiles)
        elif _sequential(c):
            kernel, kwargs = _launcher(True, c, st["const"])
            # Scratch, Stops, RowStart, TILE0 and ROW0 serve the wide backward only: placeholders
            walk_inputs = (*inputs[:7], *_pixel_planes(grad_render, out, grad_a, alpha, 0))
            kernel[lambda m: (n_tiles * m["SUB"],)](*walk_inputs, *grads, alpha, offsets, offsets, *st["sizes"], c, out_c, *st["features"], 0, 0, 1, alpha.numel(), **kwargs)
        else:
            kernel, kwargs = _launcher(True, c, st["const"])
            kernel[(n_tiles,)](*inputs, *grads, *st["sizes"], c, out_c, *st["features"], _order_arg(st, offsets), **kwargs)
        if want_abs:
            holder = meta["absgrad_holder"]
            holder.value = as_dtype(absgrad, means2d.dtype).reshape(holder.shape)
        grad_depths = as_dtype(d_depths, depths.dtype) if ctx.has_depth else None
        return (as_dtype(d_means, means2d.dtype), as_dtype(d_conics, conics.dtype), as_dtype(d_opac, opacities.dtype), as_dtype(d_values, values.dtype),
                grad_depths, grad_bg, None, None, None)


def _zeroed_parts(shapes, device) -> list[torch.Tensor]:
    """Contiguous float32 zeros of each shape, consecutive parts of one buffer (``carve``): one fill."""
    buffer = torch.zeros(sum(math.prod(shape) for shape in shapes), device=device, dtype=torch.float32)
    return carve(buffer, shapes)


def _alpha_grads(grad_render, grad_alpha, alpha, background):
    """(dL/d background [V, C] or None, g_A [V, H, W, 1]: what the backward kernels read as the
    gradient of alpha = 1 - T_final), given the output gradients (grad_render [V, H, W, C']
    float32, grad_alpha [V, H, W, 1] or None) and the forward's alpha [V, H, W, 1]. A background
    added T_final x background to the render, so there g_A = grad_alpha - G . background."""
    g_a = torch.zeros_like(alpha) if grad_alpha is None else contiguous_as(grad_alpha, torch.float32)
    if background is None:
        return None, g_a
    grad_bg, grad_t = background_grads(grad_render, g_a, 1.0 - alpha, background)
    return as_dtype(grad_bg, background.dtype), -grad_t


def _pixel_planes(grad_render, out, grad_a, alpha, first: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What the one-Gaussian-at-a-time backward reads per pixel: the output gradient's channels from
    ``first`` on as planes [OUT_C - first, V H W] (all of them for C <= 4; for the wide walk only the
    depth's, which it reads as plane NCH = 0; ``alpha`` stands in when there is none) and
    G . out - g_A T_final [V H W] (the part of dL/d alpha that does not depend on the Gaussian;
    T_final = 1 - alpha; g_A and alpha [V, H, W, 1])."""
    g_rest = ((grad_render * out).sum(-1, keepdim=True) - grad_a * (1.0 - alpha)).contiguous()
    planes = grad_render[..., first:].permute(3, 0, 1, 2).contiguous() if grad_render.shape[-1] > first else alpha
    return planes, g_rest


def _wide_forward(inputs, stops, st, c: int, out_c: int, n_tiles: int) -> None:
    """The two passes of ``triton_wide``'s forward over chunks of tiles: the channel-free walk writing
    each entry's weights to the scratch (a row per list entry) and ``stops``, then weights x features
    per channel slice into ``out``."""
    offsets, pids, means2d, conics, opac, values, depths, out, alpha = inputs
    plan = triton_wide.chunks(offsets, pids.numel(), n_tiles)
    scratch = torch.empty(max(1, max(rows for *_, rows in plan)) * triton_wide.ROW, device=out.device, dtype=torch.float32)
    shape_args = (*st["sizes"], c, out_c, *st["features"])
    walk, walk_kw = _launcher(False, c, st["const"], wide=True)
    compose, compose_kw = triton_wide._launch(triton_wide._compose_tuned, "compose")
    for t0, t1, r0, _ in plan:
        n = t1 - t0
        walk[(n,)](*inputs, scratch, stops, offsets, *shape_args, t0, r0, 1, **walk_kw)
        compose[lambda m: (n, cdiv(c, m["BLOCK_C"]))](
            offsets, stops, offsets, pids, values, scratch, out, *shape_args, t0, r0, SHARED_FEATS=st["const"]["SHARED_FEATS"], **compose_kw,
        )


def _wide_backward(inputs, grads, stops, st, c: int, out_c: int, n_tiles: int) -> None:
    """The three passes of ``triton_wide`` over chunks of tiles: G . f per (entry, pixel) into the
    scratch (a row per entry before the tile's forward stopping point), the one-Gaussian-at-a-time
    backward reading it (and writing the weights over it), then the feature gradients as weights x G
    per channel slice."""
    offsets, pids, means2d, conics, opac, values, depths, out, alpha, grad_render, grad_a = inputs
    d_values = grads[3]
    planes, g_rest = _pixel_planes(grad_render, out, grad_a, alpha, c)
    stops = stops.clone()  # the middle pass writes where it stopped
    row_start, n_rows = triton_wide.scratch_rows(offsets, stops)
    plan = triton_wide.chunks(row_start, n_rows, n_tiles)
    scratch = torch.empty(max(1, max(rows for *_, rows in plan)) * triton_wide.ROW, device=out.device, dtype=torch.float32)
    shape_args = (*st["sizes"], c, out_c, *st["features"])
    shared = st["const"]["SHARED_FEATS"]
    dots, dots_kw = triton_wide._launch(triton_wide._dots_tuned, "dots")
    feats, feats_kw = triton_wide._launch(triton_wide._feature_tuned, "feature")
    walk, walk_kw = _launcher(True, c, st["const"], wide=True)
    for t0, t1, r0, _ in plan:
        n = t1 - t0
        dots[lambda m: (n, triton_wide.ROW // m["BLOCK_P"])](offsets, stops, row_start, pids, values, grad_render, scratch, *shape_args, t0, r0, SHARED_FEATS=shared, **dots_kw)
        walk[(n,)](*inputs[:7], planes, g_rest, *grads, scratch, stops, row_start, *shape_args, t0, r0, 1, alpha.numel(), **walk_kw)
        feats[lambda m: (n, cdiv(c, m["BLOCK_C"]))](offsets, stops, row_start, pids, grad_render, scratch, d_values, *shape_args, t0, r0, SHARED_FEATS=shared, **feats_kw)


def composite(means2d, conics, opacities, values, depths, background, flat_ids, feature_ids, offsets, meta):
    """Same contract as ``ref.composite``, on CUDA tensors (or under the Triton interpreter); the
    inputs are read flat in the shapes given (no reshape: one op fewer each, and their gradients come
    back in those shapes).
    ``feature_ids`` is not read: the kernels derive each pair's feature row from
    ``meta["shared_features"]`` ((V N, N) when the features are shared across views, else None)."""
    return _CompositeTritonFn.apply(means2d, conics, opacities, values, depths, background, flat_ids, offsets, meta)
