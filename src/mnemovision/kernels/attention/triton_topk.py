"""Triton top-k memory attention: fused selection without the [Nq, M] logits, and a fused readout.

Selection is exact and runs in two passes over "tiles" of ``TILE`` consecutive keys (8, 16 or 32,
``_tile_size``: the smallest whose row of tile maxima is at most ``ROW_TILES`` long and fits the
selection program's registers):

1. ``_tile_max_kernel``: logits q k^T + bias block by block on the tensor cores, reduced to the
   maximum of each tile: tile_max [BH, Nq, ceil(M / TILE)] (TILE times smaller than the logits).
2. ``_select_kernel``, one program per query: the ``kt = min(top_k, n_tiles)`` tiles with the
   largest maxima. Every one of the query's top-k keys lies in those tiles: the k-th largest logit
   is at least the k-th largest tile maximum (k tile maxima are k distinct logits), so a tile holding
   a top-k key has a maximum no smaller than that, i.e. ranks among the top kt tiles (ties aside,
   where the top-k set is itself ambiguous). The same program computes the logits of those kt * TILE
   candidate keys in registers and picks the top_k. Both picks run without sorting
   (``_take_largest``: a search for the k-th largest value on order-preserving int32 bits,
   ``SEARCH_PROBES`` thresholds counted per step, then a prefix-sum compaction; with a bitonic
   ``tl.sort`` of 1,024 packed keys per pick instead, this kernel took about 0.5 ms of the 0.78 ms
   vos_T20 forward on an H100); the first search starts at the least of BLOCK_KT groups' maxima and
   the second at the kt-th largest tile maximum (lower bounds of what they look for, by the same
   argument), and each stops at the first count of exactly k (``bench/topk_steps.py`` counts the
   steps: at vos_T20, 44 per query for both searches run to the last bit by bisection, 15.5 with
   the bounds and the exact stop, 7.5 with 4 thresholds a step). Candidates past M get -inf and
   in-range ones are clamped to a finite floor, so in-range keys (kt * TILE >= top_k of them
   whenever TILE >= 2) always win over padding. Smaller tiles mean a
   longer row of maxima to stream (4 bytes per tile) but fewer candidate key rows to gather (one
   scattered read of D values each), the selection's main memory traffic at 32.

The readout (``_readout``) recomputes the selected logits, takes the softmax over them and
gathers the values; ``memory_attention`` runs it at the end of the selection program (one launch
for both), ``_topk_fwd_kernel`` alone only after the PyTorch selection fallback. The backward
kernel recomputes the same and scatters dK, dV and d(bias) with relaxed fp32 atomics (a key selected
by many queries receives all their gradients).
Logits are SCALE q.k + bias (``ref.prepare``'s factor, applied in the kernels: no scaled copy of q).
fp32 arithmetic for every input dtype. Shapes: q [BH, Nq, D], k [BH, M, D], v [BH, M, Dv], bias
[BH, M] float32, idx [BH, Nq, top_k] int64.
"""

from __future__ import annotations


import torch
import triton
import triton.language as tl

from mnemovision.kernels._backend import triton_autotune_enabled
from mnemovision.kernels._launch import INTERPRETED, Launcher, TunedKernel, as_dtype, carve, cdiv, next_pow2
from mnemovision.kernels.attention import ref, triton_sizes

# Keys per selection tile: chosen among these by ``_tile_size``,
# and keys per program of the tile-max pass (TILE_KEYS / tile tiles each).
TILES = (8, 16, 32)
TILE_KEYS = 128
# Register budget of the per-query selection program (elements): its row of tile maxima and its
# block of candidate logits. Beyond these, selection falls back to ``ref.topk_select``.
MAX_TILES = 4096
MAX_CANDIDATES = 8192
# The longest row of tile maxima worth its fewer candidates: at vos_T20 on an H100 (2026-11-27,
# ``bench/attention_profile.py --tiles 8,16,32``) the selection took 148 / 130 / 170 us with tiles of
# 8 / 16 / 32 keys (rows of 4,096 / 2,048 / 1,024 padded maxima), the tile maxima 40 / 34 / 32 us.
ROW_TILES = 2048
# Head-dim slice per gather of the candidate keys in the selection program, and its warps, when the
# autotuner is off: 8-wide (vector loads) on 8 warps, 80 registers with the fused readout and 3
# programs (24 warps) per SM on sm_90 at the vos_T20 shape (bench/kernel_resources.py).
_D_CHUNK = 8
SELECT_WARPS = 8
# Thresholds counted per step of the selection's searches (``_take_largest``; 1: bisection). On the
# benchmark's vos_T20 queries (``bench/topk_steps.py --probes``) the two searches take 15.5 steps
# a query by bisection, 7.5 with 4 thresholds a step, 5.8 with 8; but fewer steps did not make the
# selection faster on a GPU: on an H200 (2026-11-29, ``bench/attention_profile.py --probes 1,4,8``)
# the selection program took 130 / 136 / 140 us per vos_T20 forward, so bisection is the default.
SEARCH_PROBES = 1
# A finite floor for in-range candidate logits (masked keys have bias -inf): padding candidates
# (-inf) then never outrank a real key.
_FLOOR = tl.constexpr(-3.0e38)


@triton.jit
def _tile_max_kernel(
    Q, K, Bias, TileMax,
    NQ, M, D, NT, SCALE,
    HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, TILE_: tl.constexpr, TPB: tl.constexpr, BLOCK_D: tl.constexpr, PREC: tl.constexpr,
):
    """TileMax[bh, q, t] = max over the keys of tile t of (q . k + bias); -inf for a tile of padding."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    bh = tl.program_id(2).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    offs_n = pid_n * (TPB * TILE_) + tl.arange(0, TPB * TILE_)
    q = tl.load(Q + bh * NQ * D + offs_m[:, None] * D + offs_d[None, :], mask=(offs_m[:, None] < NQ) & (offs_d[None, :] < D), other=0.0)
    k = tl.load(K + bh * M * D + offs_n[:, None] * D + offs_d[None, :], mask=(offs_n[:, None] < M) & (offs_d[None, :] < D), other=0.0)
    s = tl.dot(q, tl.trans(k), input_precision=PREC) * SCALE
    if HAS_BIAS:
        s += tl.load(Bias + bh * M + offs_n, mask=offs_n < M, other=float("-inf"))[None, :]
    else:
        s = tl.where((offs_n < M)[None, :], s, float("-inf"))
    tmax = tl.max(tl.reshape(s, [BLOCK_M, TPB, TILE_]), axis=2)
    offs_t = pid_n * TPB + tl.arange(0, TPB)
    tl.store(TileMax + bh * NQ * NT + offs_m[:, None] * NT + offs_t[None, :], tmax, mask=(offs_m[:, None] < NQ) & (offs_t[None, :] < NT))


@triton.jit
def _ordered(vals):
    """int32 whose signed order is the order of the fp32 ``vals`` (negative floats get their
    magnitude bits flipped)."""
    bits = vals.to(tl.int32, bitcast=True)
    return bits ^ ((bits >> 31) & 0x7FFFFFFF)


@triton.jit
def _take_largest(o, ids, valid, k, start, Out, USE_START: tl.constexpr, PROBES: tl.constexpr):
    """Store the ``ids`` of the ``k`` largest entries of the 1-D int32 ``o`` at Out[0:k], in position
    order, and return the k-th largest value; among equal values the lowest positions win.
    ``valid`` marks the real entries (at least k of them; the others must be smaller than all).

    No sort: a threshold t is searched for on the value, then the entries above t and the first
    ties at t are compacted with a prefix sum. Each step counts the entries >= each of PROBES
    thresholds splitting the range [lo, hi] into PROBES + 1 parts (one block-wide reduction of
    PROBES counts: the step's latency is the reduction's, so more thresholds per step mean fewer
    steps for about the same time each; PROBES = 1 is bisection). The search stops at the first
    threshold whose count is exactly k: the k entries >= it are then the k largest (with no tie
    across the boundary, which only an exact count can show), typically a third of the steps the
    full search takes to pin the k-th largest value down to the last bit (the gap below the k-th
    largest is many ulps wide); with ties across the boundary no count is exact and the search ends
    at the k-th largest value itself. It starts from the smallest real entry, or with USE_START
    from ``start`` (a lower bound from elsewhere, used once a count confirms it): each step divides
    the range, so a tight bound saves steps. Returns t: the k-th largest value or a lower bound of
    it that still leaves exactly k entries at or above it."""
    lo = tl.min(tl.where(valid, o, 2147483647), 0)
    hi = tl.max(o, 0)
    if USE_START:
        lo = tl.where(tl.sum((o >= start).to(tl.int32), 0) >= k, tl.maximum(lo, start), lo)
    parts = (tl.arange(0, PROBES) + 1).to(tl.int64)
    while lo < hi:  # invariant: count(o >= lo) >= k, and the k-th largest lies in [lo, hi]
        # thresholds lo + ceil((hi - lo) j / (PROBES + 1)), j = 1..PROBES: ascending, in (lo, hi]
        th = (lo.to(tl.int64) + ((hi.to(tl.int64) - lo.to(tl.int64)) * parts + PROBES) // (PROBES + 1)).to(tl.int32)
        count = tl.sum((o[None, :] >= th[:, None]).to(tl.int32), 1)
        enough = count >= k
        exact = count == k
        hit = tl.max(tl.where(exact, th, lo), 0)  # an exact count: stop there
        found = tl.max(exact.to(tl.int32), 0) > 0
        lo = tl.where(found, hit, tl.max(tl.where(enough, th, lo), 0))
        hi = tl.where(found, hit, tl.min(tl.where(enough, hi, th - 1), 0))
    above = o > lo
    ties = o == lo
    take = above | (ties & (tl.cumsum(ties.to(tl.int32), 0) <= k - tl.sum(above.to(tl.int32), 0)))
    slot = tl.cumsum(take.to(tl.int32), 0) - 1
    tl.store(Out + slot, ids, mask=take)
    return lo


@triton.jit
def _select_kernel(
    Q, K, V, Bias, TileMax, Idx, Out, Lse,
    NQ, M, D, DV, NT, KT, TOPK, SCALE,
    HAS_BIAS: tl.constexpr, READOUT: tl.constexpr, TILE_: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_KT: tl.constexpr,
    BLOCK_D: tl.constexpr, D_CHUNK: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_DV: tl.constexpr, PROBES: tl.constexpr,
    STORE_LSE: tl.constexpr,
):
    """One query per program: the KT tiles with the largest maxima (written to Idx[row, :KT] as
    scratch, read back after a barrier), the logits of their KT * TILE candidate keys in registers
    (one gather per D_CHUNK slice of the head dim), and the keys of the TOPK largest of those to
    Idx[row, :TOPK] (ties go to the lowest key). Selection by ``_take_largest`` (no sort). With
    READOUT, the same program then reads the values (``_readout``: Out[row], and Lse[row] with
    STORE_LSE), one launch instead of two; without it V, Out, Lse and DV are not read."""
    row = tl.program_id(0).to(tl.int64)
    bh = row // NQ
    offs_t = tl.arange(0, BLOCK_T)
    # real tiles are floored above the padding (-inf), so KT <= NT picks real tiles only
    tile_vals = tl.load(TileMax + row * NT + offs_t, mask=offs_t < NT, other=float("-inf"))
    tile_vals = tl.where(offs_t < NT, tl.maximum(tile_vals, _FLOOR), float("-inf"))
    o_tiles = _ordered(tile_vals)
    # a lower bound of the KT-th largest tile maximum: the least of BLOCK_KT >= KT strided groups'
    # maxima (BLOCK_KT distinct entries are at least it); with padding-only groups it is -inf and the
    # search starts from the smallest real entry instead
    bound = tl.min(tl.max(tl.reshape(o_tiles, [BLOCK_T // BLOCK_KT, BLOCK_KT]), axis=0), axis=0)
    kth_tile = _take_largest(o_tiles, offs_t.to(tl.int64), offs_t < NT, KT, bound, Idx + row * TOPK, True, PROBES)
    tl.debug_barrier()
    offs_j = tl.arange(0, BLOCK_KT)
    best = tl.load(Idx + row * TOPK + offs_j, mask=offs_j < KT, other=0)
    tl.debug_barrier()  # every read of the scratch before the final writes
    offs_i = tl.arange(0, TILE_)
    keys = best[:, None] * TILE_ + offs_i[None, :]  # [BLOCK_KT, TILE_] candidate key ids, ascending
    inside = (offs_j < KT)[:, None] & (keys < M)
    s = tl.zeros([BLOCK_KT, TILE_], dtype=tl.float32)
    for d0 in tl.static_range(0, BLOCK_D, D_CHUNK):
        offs_d = d0 + tl.arange(0, D_CHUNK)
        q = tl.load(Q + row * D + offs_d, mask=offs_d < D, other=0.0).to(tl.float32) * SCALE
        k = tl.load(K + (bh * M + keys)[:, :, None] * D + offs_d[None, None, :], mask=inside[:, :, None] & (offs_d < D)[None, None, :], other=0.0)
        s += tl.sum(k.to(tl.float32) * q[None, None, :], 2)
    if HAS_BIAS:
        s += tl.load(Bias + bh * M + keys, mask=inside, other=0.0)
    s = tl.where(inside, tl.maximum(s, _FLOOR), float("-inf"))
    n_cand: tl.constexpr = BLOCK_KT * TILE_
    # the KT-th largest tile maximum is a logit of a candidate, so with KT = TOPK the k-th largest
    # candidate is at least it, and at least the first search's result (a lower bound of that
    # maximum): the search starts there (checked: the two passes round differently)
    _take_largest(_ordered(tl.reshape(s, [n_cand])), tl.reshape(keys, [n_cand]), tl.reshape(inside, [n_cand]), TOPK, kth_tile, Idx + row * TOPK, True, PROBES)
    if READOUT:
        tl.debug_barrier()  # the keys just written are read back by every thread
        _readout(Q, K, V, Bias, Idx, Out, Lse, row, bh, M, D, DV, TOPK, SCALE, HAS_BIAS, BLOCK_K, BLOCK_D, BLOCK_DV, STORE_LSE)


@triton.jit
def _selected(Q, K, Bias, Idx, row, bh, M, D, TOPK, SCALE, HAS_BIAS: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    """(SCALE * q [BLOCK_D], k rows [BLOCK_K, BLOCK_D], their flat row numbers, logits [BLOCK_K], slot mask)."""
    offs_j = tl.arange(0, BLOCK_K)
    offs_d = tl.arange(0, BLOCK_D)
    used = offs_j < TOPK
    idx = tl.load(Idx + row * TOPK + offs_j, mask=used, other=0)
    rows = bh * M + idx
    q = tl.load(Q + row * D + offs_d, mask=offs_d < D, other=0.0).to(tl.float32) * SCALE
    k = tl.load(K + rows[:, None] * D + offs_d[None, :], mask=used[:, None] & (offs_d[None, :] < D), other=0.0).to(tl.float32)
    s = tl.sum(k * q[None, :], 1)
    if HAS_BIAS:
        s += tl.load(Bias + rows, mask=used, other=float("-inf"))
    s = tl.where(used, s, float("-inf"))
    return q, k, rows, s, used


@triton.jit
def _readout(
    Q, K, V, Bias, Idx, Out, Lse, row, bh, M, D, DV, TOPK, SCALE,
    HAS_BIAS: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, STORE_LSE: tl.constexpr,
):
    """Out[row] = softmax over the selected logits of the selected values; with STORE_LSE, Lse[row]
    their log-sum-exp."""
    q, k, rows, s, used = _selected(Q, K, Bias, Idx, row, bh, M, D, TOPK, SCALE, HAS_BIAS, BLOCK_K, BLOCK_D)
    mx = tl.max(s, 0)
    has = mx != float("-inf")
    safe = tl.where(has, mx, 0.0)
    p = tl.exp(s - safe)
    total = tl.sum(p, 0)
    w = tl.where(has, p / tl.where(has, total, 1.0), 0.0)
    for e0 in range(0, DV, BLOCK_DV):
        offs_e = e0 + tl.arange(0, BLOCK_DV)
        v = tl.load(V + rows[:, None] * DV + offs_e[None, :], mask=used[:, None] & (offs_e[None, :] < DV), other=0.0).to(tl.float32)
        out = tl.sum(w[:, None] * v, 0)
        tl.store(Out + row * DV + offs_e, out.to(Out.dtype.element_ty), mask=offs_e < DV)
    if STORE_LSE:
        tl.store(Lse + row, tl.where(has, safe + tl.log(tl.where(has, total, 1.0)), float("-inf")))


@triton.jit
def _topk_fwd_kernel(
    Q, K, V, Bias, Idx, Out, Lse,
    NQ, M, D, DV, TOPK, SCALE,
    HAS_BIAS: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, STORE_LSE: tl.constexpr,
):
    """The readout alone, for keys selected elsewhere (the PyTorch selection fallback)."""
    row = tl.program_id(0).to(tl.int64)
    _readout(Q, K, V, Bias, Idx, Out, Lse, row, row // NQ, M, D, DV, TOPK, SCALE, HAS_BIAS, BLOCK_K, BLOCK_D, BLOCK_DV, STORE_LSE)


@triton.jit
def _topk_bwd_kernel(
    Q, K, V, Bias, Idx, Lse, Out, DO, GradLse, DQ, Acc,
    NQ, M, D, DV, TOPK, SCALE, DV_AT, DBIAS_AT,
    HAS_BIAS: tl.constexpr, HAS_GLSE: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
):
    """dQ[row] = sum_j ds_j k_j; atomically dK[j] += ds_j q, dV[j] += p_j dO, dBias[j] += ds_j,
    with p the selected softmax weights, ds_j = p_j (dO . v_j - delta) and delta = dO . out (less
    the lse gradient when HAS_GLSE), computed here in the same pass over Dv. dK, dV and dBias are
    one float32 buffer ``Acc``: dK [B*H*M, D] from 0, dV [B*H*M, DV] from DV_AT, dBias from DBIAS_AT."""
    DK = Acc
    DVacc = Acc + DV_AT
    DBias = Acc + DBIAS_AT
    row = tl.program_id(0).to(tl.int64)
    bh = row // NQ
    q, k, rows, s, used = _selected(Q, K, Bias, Idx, row, bh, M, D, TOPK, SCALE, HAS_BIAS, BLOCK_K, BLOCK_D)
    lse = tl.load(Lse + row)
    lse = tl.where(lse == float("-inf"), float("inf"), lse)  # every key masked: all weights exp(-inf) = 0
    p = tl.where(used, tl.exp(s - lse), 0.0)
    dp = tl.zeros([BLOCK_K], dtype=tl.float32)
    delta = tl.zeros([BLOCK_DV], dtype=tl.float32)
    for e0 in range(0, DV, BLOCK_DV):
        offs_e = e0 + tl.arange(0, BLOCK_DV)
        emask = used[:, None] & (offs_e[None, :] < DV)
        do = tl.load(DO + row * DV + offs_e, mask=offs_e < DV, other=0.0).to(tl.float32)
        delta += do * tl.load(Out + row * DV + offs_e, mask=offs_e < DV, other=0.0).to(tl.float32)
        v = tl.load(V + rows[:, None] * DV + offs_e[None, :], mask=emask, other=0.0).to(tl.float32)
        dp += tl.sum(v * do[None, :], 1)
        tl.atomic_add(DVacc + rows[:, None] * DV + offs_e[None, :], p[:, None] * do[None, :], mask=emask, sem="relaxed")
    total = tl.sum(delta, 0)
    if HAS_GLSE:
        total -= tl.load(GradLse + row).to(tl.float32)
    ds = p * (dp - total)
    offs_d = tl.arange(0, BLOCK_D)
    tl.store(DQ + row * D + offs_d, (SCALE * tl.sum(ds[:, None] * k, 0)).to(DQ.dtype.element_ty), mask=offs_d < D)
    tl.atomic_add(DK + rows[:, None] * D + offs_d[None, :], ds[:, None] * q[None, :], mask=used[:, None] & (offs_d[None, :] < D), sem="relaxed")
    if HAS_BIAS:
        tl.atomic_add(DBias + rows, ds, mask=used, sem="relaxed")


# ---------------------------------------------------------------------------------------------
# launchers

# The selection program's gather width and warps, tuned per (D, Dv, top_k, tile-row size) on a GPU
# (registers with the fused readout at vos_T20, offline): the fixed choice (8-wide on 8 warps, 80)
# beside 16 warps (47), 16-wide gathers (102) and 4-wide on 4 warps (106); and the fixed choice
# capped at 80 registers: with tiles of 8 it uses 103 (Triton 3.8) to 127 (3.6), 2 programs per SM,
# capped 3, without spills under either (the program waits on scattered gathers, so more warps per
# SM hide more of that; 2026-11-27 offline, ``bench/kernel_resources.py``).
# The trials rewrite Idx (and Out, Lse) with the same values, so they need no reset.
_select_tuned = TunedKernel(triton.autotune(
    [triton.Config({"D_CHUNK": dc}, num_warps=w, maxnreg=cap) for w, dc, cap in ((SELECT_WARPS, _D_CHUNK, None), (16, 8, None), (8, 16, None), (4, 4, None), (SELECT_WARPS, _D_CHUNK, 80))],
    key=["D", "DV", "TOPK", "BLOCK_T", "READOUT"],
)(_select_kernel))
# the kernels launched without the autotuner (``Launcher``: on a GPU a launch of a specialization seen
# before skips the JIT's per-launch work); ``_select_tuned.launcher`` is the selection's
_tile_max, _topk_fwd, _topk_bwd = (Launcher(kernel) for kernel in (_tile_max_kernel, _topk_fwd_kernel, _topk_bwd_kernel))


def _flat_inputs(q, k, v, bias):
    """(qf, kf, vf, HAS_BIAS, Bias argument): q, k, v in the kernels' contiguous [B*H, L, E] row
    layout (``triton_sizes.dense_rows``: the tensors themselves when contiguous; vf None without v)
    and the kernels' bias (``triton_sizes.kernel_bias``)."""
    rows = triton_sizes.dense_rows
    qf = rows(q)
    return (qf, rows(k), None if v is None else rows(v), *triton_sizes.kernel_bias(bias, q.shape[0] * q.shape[1], k.shape[2], qf))


def _tile_size(m: int, top_k: int) -> int:
    """Keys per selection tile for M keys: the smallest of ``TILES`` whose row of tile maxima has at
    most ``ROW_TILES`` entries and whose candidate block fits the selection program; else the
    smallest whose row fits at all (``MAX_TILES``); else the largest (for which ``_select`` may fall
    back to PyTorch). Per query the selection reads its row of tile maxima (4 bytes per tile,
    streamed, each search step counting over it) and gathers min(top_k, tiles) x tile candidate
    key rows (scattered): at vos_T20 (M = 32,400, top-k 30, D = 64 in fp16) tiles of 8 mean 4,050
    maxima and 240 candidates per query, tiles of 16 2,025 and 480, tiles of 32 1,013 and 960."""
    row_limit = min(ROW_TILES, MAX_TILES)
    for limit in (row_limit, MAX_TILES):
        for tile in TILES:
            n_tiles = cdiv(m, tile)
            if next_pow2(n_tiles) <= limit and next_pow2(min(top_k, n_tiles)) * tile <= MAX_CANDIDATES:
                return tile
    return TILES[-1]


def _select(q, k, bias, flat, top_k: int, scale: float, tile: int | None, with_lse: bool = True):
    """(idx [B, H, Nq, top_k] int64, out [B, H, Nq, Dv] or None, lse [B, H, Nq] float32 or None),
    with ``flat`` = ``_flat_inputs(q, k, v or None, bias)``; lse only ``with_lse``.

    Two launches: the tile maxima, then one program per query for the rest, which with v also
    reads the values (out, lse). Memory beyond the inputs: the tile maxima, [B*H, Nq, ceil(M / tile)]
    float32. Where a query's tile row or its candidate block would not fit in registers
    (``MAX_TILES``, ``MAX_CANDIDATES``), the chunked matmul + ``torch.topk`` selection of ``ref`` is
    used instead, and out and lse are None. Outputs are allocated in their final shapes (the kernels
    write them as [B*H, ...] rows)."""
    b, h, nq, d = q.shape
    m = k.shape[2]
    tile = tile or _tile_size(m, top_k)
    n_tiles = cdiv(m, tile)
    kt = min(top_k, n_tiles)
    block_t, block_kt = next_pow2(n_tiles), next_pow2(kt)
    if block_t > MAX_TILES or block_kt * tile > MAX_CANDIDATES:
        chunk = max(16, min(nq, (1 << 27) // max(1, b * h * m)))
        return ref.topk_select(q, k, ref.bias_or_zeros(bias, k), top_k, scale, chunk=chunk), None, None
    qf, kf, vf, has_bias, biasf = flat
    device = q.device
    # no torch.no_grad() needed: fresh buffers and launches are invisible to autograd
    tile_max = torch.empty(b * h, nq, n_tiles, device=device, dtype=torch.float32)
    block_m = 16 if INTERPRETED else 64
    tpb = max(1, TILE_KEYS // tile)
    grid = (cdiv(nq, block_m), cdiv(n_tiles, tpb), b * h)
    _tile_max[grid](
        qf, kf, biasf, tile_max, nq, m, d, n_tiles, scale,
        HAS_BIAS=has_bias, BLOCK_M=block_m, TILE_=tile, TPB=tpb, BLOCK_D=triton_sizes.block_d(d), PREC=triton_sizes.precision(q.dtype), num_warps=4,
    )
    idx = torch.empty(b, h, nq, top_k, device=device, dtype=torch.int64)
    readout = vf is not None
    if readout:
        dv = vf.shape[-1]
        out = torch.empty(b, h, nq, dv, device=device, dtype=q.dtype)
        lse = torch.empty(b, h, nq, device=device, dtype=torch.float32) if with_lse else None
    else:  # placeholders the kernel does not read
        dv, vf, out, lse = 1, tile_max, tile_max, None
    store_lse = lse is not None
    sizes = dict(HAS_BIAS=has_bias, READOUT=readout, TILE_=tile, BLOCK_T=block_t, BLOCK_KT=block_kt, PROBES=SEARCH_PROBES, STORE_LSE=store_lse, **_launch_sizes(top_k, d, dv))
    args = (qf, kf, vf, biasf, tile_max, idx, out, lse if store_lse else tile_max, nq, m, d, dv, n_tiles, kt, top_k, scale)
    if triton_autotune_enabled():
        _select_tuned[(b * h * nq,)](*args, **sizes)
    else:  # the interpreter, or MNEMOVISION_TRITON_AUTOTUNE=0
        _select_tuned.launcher[(b * h * nq,)](*args, **sizes, D_CHUNK=_D_CHUNK, num_warps=SELECT_WARPS)
    return idx, (out if readout else None), lse


def topk_select(q, k, bias, top_k: int, scale: float = 1.0, tile: int | None = None):
    """Indices [B, H, Nq, top_k] (int64, unordered) of each query's top_k largest logits
    scale q.k + bias (``_select`` without the readout); ``tile`` keys per selection tile (a power
    of two; default ``_tile_size``)."""
    return _select(q, k, bias, _flat_inputs(q, k, None, bias), top_k, scale, tile)[0]


def _select_and_read(q, k, v, bias, top_k: int, scale: float, tile: int | None, with_lse: bool = True):
    """(flat inputs, idx [B, H, Nq, top_k], out [B, H, Nq, Dv], lse [B, H, Nq] float32, or None
    without ``with_lse``): the selection with its readout, or after ``ref``'s selection the readout
    kernel on its own."""
    flat = _flat_inputs(q, k, v, bias)
    idx, out, lse = _select(q, k, bias, flat, top_k, scale, tile, with_lse)
    if out is None:  # the selection fell back to PyTorch: the readout on its own
        qf, kf, vf, has_bias, biasf = flat
        b, h, nq, d = q.shape
        m, dv = k.shape[2], v.shape[3]
        out = torch.empty(b, h, nq, dv, device=q.device, dtype=q.dtype)
        lse = torch.empty(b, h, nq, device=q.device, dtype=torch.float32) if with_lse else None
        _topk_fwd[(b * h * nq,)](
            qf, kf, vf, biasf, idx, out, out if lse is None else lse, nq, m, d, dv, top_k, scale,
            HAS_BIAS=has_bias, STORE_LSE=with_lse, **_launch_sizes(top_k, d, dv), num_warps=4,
        )
    return flat, idx, out, lse


def _launch_sizes(top_k: int, d: int, dv: int) -> dict:
    return dict(BLOCK_K=max(2, next_pow2(top_k)), BLOCK_D=triton_sizes.block_d(d), BLOCK_DV=triton_sizes.block_dv(dv))


class _TopkReadoutFn(torch.autograd.Function):
    """Top-k selection and the softmax over the selected keys; gradients reach q and the selected
    rows of k, v and bias. Returns (out, lse, idx), idx not differentiable."""

    @staticmethod
    def forward(ctx, q, k, v, bias, top_k: int, scale: float, tile: int | None):
        ctx.set_materialize_grads(False)  # an unused lse (and idx) gets None, not a zeros tensor
        (qf, kf, vf, _, biasf), idx, out, lse = _select_and_read(q, k, v, bias, top_k, scale, tile)
        ctx.save_for_backward(qf, kf, vf, biasf, idx, out, lse)
        ctx.top_k, ctx.bias_dtype = top_k, None if bias is None else bias.dtype
        ctx.scale = scale
        ctx.mark_non_differentiable(idx)
        return out, triton_sizes.lse_out(lse, q.dtype), idx

    @staticmethod
    def backward(ctx, grad_out, grad_lse, _grad_idx):
        qf, kf, vf, biasf, idx, out, lse = ctx.saved_tensors
        top_k, bias_dtype = ctx.top_k, ctx.bias_dtype
        b, h, nq, d = qf.shape
        m, dv = kf.shape[2], vf.shape[3]
        go = torch.zeros_like(out) if grad_out is None else triton_sizes.dense_rows(grad_out)
        has_glse = grad_lse is not None
        glse = triton_sizes.dense_rows(grad_lse) if has_glse else lse
        dq = torch.empty_like(qf)
        has_bias = bias_dtype is not None
        # one zeroed fp32 buffer for the atomically accumulated dK, dV (and d(bias)): one fill, one
        # cast, and the gradients as strided views of the cast (each op costs the host microseconds)
        n_k, n_v = b * h * m * d, b * h * m * dv
        acc = torch.zeros(n_k + n_v + (b * h * m if has_bias else 0), device=qf.device, dtype=torch.float32)
        _topk_bwd[(b * h * nq,)](
            qf, kf, vf, biasf, idx, lse, out, go, glse, dq, acc, nq, m, d, dv, top_k, ctx.scale, n_k, n_k + n_v,
            HAS_BIAS=has_bias, HAS_GLSE=has_glse, **_launch_sizes(top_k, d, dv), num_warps=4,
        )
        cast = as_dtype(acc[: n_k + n_v] if has_bias else acc, qf.dtype)
        dk, dv_ = carve(cast, ((b, h, m, d), (b, h, m, dv)))
        dbias = acc[n_k + n_v:].view(b, h, m).to(bias_dtype) if has_bias else None
        return dq, dk, dv_, dbias, None, None, None


def topk_readout(q, k, v, bias, top_k: int, scale: float = 1.0, tile: int | None = None, with_lse: bool = True):
    """(out [B, H, Nq, Dv], lse [B, H, Nq], idx [B, H, Nq, top_k]) of softmax attention with logits
    scale q.k + bias over each query's top_k keys, selected and read in one program per query;
    differentiable in q, k, v, bias and through lse. ``tile`` as in ``topk_select``. Without anything
    to differentiate (inference, ``torch.no_grad``) it launches without autograd, and without
    ``with_lse`` there it neither allocates nor writes lse (returned as None)."""
    if triton_sizes.needs_grad(q, k, v, bias):
        return _TopkReadoutFn.apply(q, k, v, bias, top_k, scale, tile)
    _, idx, out, lse = _select_and_read(q, k, v, bias, top_k, scale, tile, with_lse)
    return out, triton_sizes.lse_out(lse, q.dtype), idx
