"""Triton memory attention: flash-style dense softmax attention with a per-key bias.

Fused: logits = scale q k^T + bias (every kernel applies the scale to its fp32 logits and
gradients, and skips an all-zero bias passed as None; padding is bias -inf), online softmax in
base 2, and P V, without ever writing the [Nq, M] matrix. Forward returns (out, lse); the
backward accepts a gradient on lse too, so partial attentions can be merged (``ref.merge``).
Algorithm: FlashAttention (Dao et al. 2022) forward; the backward is a delta pass (dO . out) and
three kernels (dV; dK with d(bias); dQ), so no atomics are needed and the value width Dv can exceed
what one program holds (Dv is tiled; the memory-attention shapes have Dv up to 768 with D as small
as 64); where Dv fits one slice (at most 256: MCNet) dV and dK share one kernel and its pass over the
queries (FlashAttention-2's key-side loop); key-side partials over query splits are summed by one
more launch.
``usage`` (column sums of the softmax) is a separate pass over key blocks.

Limits: D <= 256. fp32 accumulation for every dtype. Top-k selection and the top-k readout are in
``triton_topk``.
Under ``TRITON_INTERPRET=1`` the kernels run on CPU with fixed block sizes (no autotuning there).
"""

from __future__ import annotations


import torch
import triton
import triton.language as tl

from mnemovision.kernels._backend import triton_autotune_enabled
from mnemovision.kernels._launch import Launcher, TunedKernel, as_dtype, cdiv, next_pow2
from mnemovision.kernels.attention import ref, triton_sizes, triton_topk

MAX_HEAD_DIM = 256


def _fwd_configs():
    """Static candidate tiles for the forward kernel (pruned per call, never by querying the device)."""
    shapes = (
        (64, 64, 128, 4, 2), (128, 64, 128, 8, 2), (64, 64, 256, 8, 2), (128, 32, 256, 8, 2), (64, 128, 64, 4, 2),
        (128, 128, 128, 8, 2), (32, 32, 128, 4, 2), (64, 32, 256, 4, 2), (128, 64, 256, 8, 2), (128, 64, 256, 8, 1),
        (64, 64, 256, 4, 3), (128, 32, 256, 8, 3), (64, 32, 256, 4, 3),
    )
    return [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_DV": bdv}, num_warps=w, num_stages=st) for bm, bn, bdv, w, st in shapes]


def _prune_fwd(configs, named_args, **kwargs):
    dv = named_args["DV"]
    block_d = kwargs.get("BLOCK_D", named_args.get("BLOCK_D", 64))
    kept = []
    for c in configs:
        bm, bn, bdv = c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.kwargs["BLOCK_DV"]
        if bdv > max(16, next_pow2(dv)):
            continue  # a slice wider than Dv only wastes registers
        if block_d > 128 and (bm * bn > 128 * 64 or bdv > 256):
            continue  # large head dims: keep the tiles within shared memory
        kept.append(c)
    return kept or [triton.Config({"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_DV": 64}, num_warps=4, num_stages=1)]


@triton.jit
def _fwd_block(
    q, K, V, Bias, bh, start_n, m_i, l_i, acc, offs_d, offs_e, M, D, DV, scale2,
    HAS_BIAS: tl.constexpr, TAIL: tl.constexpr, BLOCK_N: tl.constexpr, PREC: tl.constexpr,
):
    """One key block of the online softmax: (m_i, l_i, acc) after keys start_n .. start_n + BLOCK_N
    (base-2 logits; m_i the running maximum, l_i the running sum, acc the unnormalised output).
    Only the ``TAIL`` block (the last, partial one) checks keys against M: the others load and use
    their keys without a per-block mask (the head-dim masks are the same every block)."""
    offs_n = start_n + tl.arange(0, BLOCK_N)
    k_mask = offs_d[None, :] < D
    v_mask = offs_e[None, :] < DV
    if TAIL:
        k_mask = k_mask & (offs_n[:, None] < M)
        v_mask = v_mask & (offs_n[:, None] < M)
    k = tl.load(K + bh * M * D + offs_n[:, None] * D + offs_d[None, :], mask=k_mask, other=0.0)
    s = tl.dot(q, tl.trans(k), input_precision=PREC) * scale2
    if HAS_BIAS:
        if TAIL:
            bias = tl.load(Bias + bh * M + offs_n, mask=offs_n < M, other=float("-inf"))
        else:
            bias = tl.load(Bias + bh * M + offs_n)
        s += bias[None, :] * 1.4426950408889634
    elif TAIL:
        s = tl.where((offs_n < M)[None, :], s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # a row with every key masked so far
    p = tl.exp2(s - m_safe[:, None])
    alpha = tl.exp2(m_i - m_safe)
    l_i = l_i * alpha + tl.sum(p, 1)
    v = tl.load(V + bh * M * DV + offs_n[:, None] * DV + offs_e[None, :], mask=v_mask, other=0.0)
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PREC)
    return m_new, l_i, acc


@triton.jit
def _attn_fwd_kernel(
    Q, K, V, Bias, Out, Lse,
    NQ, M, D, DV, SCALE,
    HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
    PREC: tl.constexpr, STORE_LSE: tl.constexpr,
):
    """One program: BLOCK_M queries x one BLOCK_DV slice of the values, of one (batch, head).
    Logits SCALE q.k (+ bias when HAS_BIAS; keys past M get -inf either way). The whole key blocks
    run unmasked; a partial last block runs once more with masks (``_fwd_block``). Lse is written
    only with STORE_LSE (an inference call that returns out alone needs none)."""
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    pid_e = tl.program_id(2)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    offs_e = pid_e * BLOCK_DV + tl.arange(0, BLOCK_DV)
    q = tl.load(Q + bh * NQ * D + offs_m[:, None] * D + offs_d[None, :], mask=(offs_m[:, None] < NQ) & (offs_d[None, :] < D), other=0.0)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_DV], dtype=tl.float32)
    # base-2 logits (SCALE and the bias times log2(e)): the softmax then runs on exp2, one MUFU op
    scale2 = SCALE * 1.4426950408889634
    whole = M - M % BLOCK_N
    for start_n in range(0, whole, BLOCK_N):
        m_i, l_i, acc = _fwd_block(q, K, V, Bias, bh, start_n, m_i, l_i, acc, offs_d, offs_e, M, D, DV, scale2, HAS_BIAS, False, BLOCK_N, PREC)
    if whole < M:
        m_i, l_i, acc = _fwd_block(q, K, V, Bias, bh, whole, m_i, l_i, acc, offs_d, offs_e, M, D, DV, scale2, HAS_BIAS, True, BLOCK_N, PREC)
    has_keys = l_i > 0.0
    out = acc / tl.where(has_keys, l_i, 1.0)[:, None]
    tl.store(Out + bh * NQ * DV + offs_m[:, None] * DV + offs_e[None, :], out.to(Out.dtype.element_ty), mask=(offs_m[:, None] < NQ) & (offs_e[None, :] < DV))
    if STORE_LSE and pid_e == 0:  # natural-log lse = ln(2) (m + log2 l)
        lse = tl.where(has_keys, (m_i + tl.log2(tl.where(has_keys, l_i, 1.0))) * 0.6931471805599453, float("-inf"))
        tl.store(Lse + bh * NQ + offs_m, lse, mask=offs_m < NQ)


@triton.jit
def _probs(q, K, Bias, Lse, bh, offs_m, offs_n, offs_d, NQ, M, D, SCALE, HAS_BIAS: tl.constexpr, PREC: tl.constexpr):
    """p [BLOCK_M, BLOCK_N] = exp(SCALE q k^T + bias - lse), zero where lse is -inf or out of range,
    and the key rows k [BLOCK_N, BLOCK_D] it loaded."""
    k = tl.load(K + bh * M * D + offs_n[:, None] * D + offs_d[None, :], mask=(offs_n[:, None] < M) & (offs_d[None, :] < D), other=0.0)
    return _probs_of(q, k, Bias, Lse, bh, offs_m, offs_n, NQ, M, SCALE, HAS_BIAS, PREC), k


@triton.jit
def _probs_of(q, k, Bias, Lse, bh, offs_m, offs_n, NQ, M, SCALE, HAS_BIAS: tl.constexpr, PREC: tl.constexpr):
    """``_probs`` for key rows already loaded."""
    if HAS_BIAS:
        bias = tl.load(Bias + bh * M + offs_n, mask=offs_n < M, other=float("-inf")).to(tl.float32)
    else:
        bias = tl.where(offs_n < M, 0.0, float("-inf"))
    lse = tl.load(Lse + bh * NQ + offs_m, mask=offs_m < NQ, other=float("-inf"))
    s = tl.dot(q, tl.trans(k), input_precision=PREC) * SCALE + bias[None, :]
    valid = (lse != float("-inf"))[:, None] & (offs_n < M)[None, :]
    return tl.where(valid, tl.exp(s - tl.where(lse == float("-inf"), 0.0, lse)[:, None]), 0.0)


@triton.jit
def _dp_block(DO, V, bh, offs_m, offs_n, NQ, M, DV, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_DV: tl.constexpr, PREC: tl.constexpr):
    """dp [BLOCK_M, BLOCK_N] = dO V^T, reduced over Dv in BLOCK_DV slices."""
    dp = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for e0 in range(0, DV, BLOCK_DV):
        offs_e = e0 + tl.arange(0, BLOCK_DV)
        do = tl.load(DO + bh * NQ * DV + offs_m[:, None] * DV + offs_e[None, :], mask=(offs_m[:, None] < NQ) & (offs_e[None, :] < DV), other=0.0)
        v = tl.load(V + bh * M * DV + offs_n[:, None] * DV + offs_e[None, :], mask=(offs_n[:, None] < M) & (offs_e[None, :] < DV), other=0.0)
        dp += tl.dot(do, tl.trans(v), input_precision=PREC)
    return dp


@triton.jit
def _attn_bwd_dv_kernel(
    Q, K, Bias, Lse, DO, DVout,
    NQ, M, D, DV, CHUNK, SPLITS, SCALE,
    HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, PREC: tl.constexpr,
):
    """dV[n, e-slice] = sum over the queries of split s of p[q, n] dO[q, e-slice] (fp32 partial per split)."""
    pid_n = tl.program_id(0)
    bh = tl.program_id(1) // SPLITS
    split = tl.program_id(1) % SPLITS
    pid_e = tl.program_id(2)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    offs_e = pid_e * BLOCK_DV + tl.arange(0, BLOCK_DV)
    dv = tl.zeros([BLOCK_N, BLOCK_DV], dtype=tl.float32)
    for start_m in range(split * CHUNK, tl.minimum(NQ, split * CHUNK + CHUNK), BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        q = tl.load(Q + bh * NQ * D + offs_m[:, None] * D + offs_d[None, :], mask=(offs_m[:, None] < NQ) & (offs_d[None, :] < D), other=0.0)
        p, k = _probs(q, K, Bias, Lse, bh, offs_m, offs_n, offs_d, NQ, M, D, SCALE, HAS_BIAS, PREC)
        do = tl.load(DO + bh * NQ * DV + offs_m[:, None] * DV + offs_e[None, :], mask=(offs_m[:, None] < NQ) & (offs_e[None, :] < DV), other=0.0)
        dv += tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=PREC)
    tl.store(DVout + tl.program_id(1).to(tl.int64) * M * DV + offs_n[:, None] * DV + offs_e[None, :], dv.to(DVout.dtype.element_ty), mask=(offs_n[:, None] < M) & (offs_e[None, :] < DV))


@triton.jit
def _attn_bwd_dk_kernel(
    Q, K, V, Bias, Lse, DO, Delta, DK, DBias,
    NQ, M, D, DV, CHUNK, SPLITS, SCALE,
    HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, PREC: tl.constexpr,
):
    """dK[n] = sum_q ds[q, n] q[q] and d(bias)[n] = sum_q ds[q, n], ds = p (dp - delta), over the
    queries of split s (fp32 partials per split)."""
    pid_n = tl.program_id(0)
    bh = tl.program_id(1) // SPLITS
    split = tl.program_id(1) % SPLITS
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dbias = tl.zeros([BLOCK_N], dtype=tl.float32)
    for start_m in range(split * CHUNK, tl.minimum(NQ, split * CHUNK + CHUNK), BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        q = tl.load(Q + bh * NQ * D + offs_m[:, None] * D + offs_d[None, :], mask=(offs_m[:, None] < NQ) & (offs_d[None, :] < D), other=0.0)
        p, k = _probs(q, K, Bias, Lse, bh, offs_m, offs_n, offs_d, NQ, M, D, SCALE, HAS_BIAS, PREC)
        dp = _dp_block(DO, V, bh, offs_m, offs_n, NQ, M, DV, BLOCK_M, BLOCK_N, BLOCK_DV, PREC)
        delta = tl.load(Delta + bh * NQ + offs_m, mask=offs_m < NQ, other=0.0)
        ds = p * (dp - delta[:, None])
        dk += tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision=PREC)
        dbias += tl.sum(ds, 0)
    part = tl.program_id(1).to(tl.int64)
    tl.store(DK + part * M * D + offs_n[:, None] * D + offs_d[None, :], (dk * SCALE).to(DK.dtype.element_ty), mask=(offs_n[:, None] < M) & (offs_d[None, :] < D))
    if HAS_BIAS:
        tl.store(DBias + part * M + offs_n, dbias, mask=offs_n < M)


@triton.jit
def _attn_bwd_dkdv_kernel(
    Q, K, V, Bias, Lse, DO, Delta, DK, DVout, DBias,
    NQ, M, D, DV, CHUNK, SPLITS, SCALE,
    HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, PREC: tl.constexpr,
):
    """The dK / d(bias) and dV kernels in one pass over the queries of split s, for Dv <= BLOCK_DV
    (the whole value width in one slice): the key block's k and v rows are loaded once, and each
    query block's probabilities p serve dV += p^T dO and ds = p (dO v^T - delta) alike
    (FlashAttention-2's key-side loop; fp32 partials per split)."""
    pid_n = tl.program_id(0)
    bh = tl.program_id(1) // SPLITS
    split = tl.program_id(1) % SPLITS
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    offs_e = tl.arange(0, BLOCK_DV)
    k = tl.load(K + bh * M * D + offs_n[:, None] * D + offs_d[None, :], mask=(offs_n[:, None] < M) & (offs_d[None, :] < D), other=0.0)
    v = tl.load(V + bh * M * DV + offs_n[:, None] * DV + offs_e[None, :], mask=(offs_n[:, None] < M) & (offs_e[None, :] < DV), other=0.0)
    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_DV], dtype=tl.float32)
    dbias = tl.zeros([BLOCK_N], dtype=tl.float32)
    for start_m in range(split * CHUNK, tl.minimum(NQ, split * CHUNK + CHUNK), BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        q = tl.load(Q + bh * NQ * D + offs_m[:, None] * D + offs_d[None, :], mask=(offs_m[:, None] < NQ) & (offs_d[None, :] < D), other=0.0)
        p = _probs_of(q, k, Bias, Lse, bh, offs_m, offs_n, NQ, M, SCALE, HAS_BIAS, PREC)
        do = tl.load(DO + bh * NQ * DV + offs_m[:, None] * DV + offs_e[None, :], mask=(offs_m[:, None] < NQ) & (offs_e[None, :] < DV), other=0.0)
        dv += tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=PREC)
        dp = tl.dot(do, tl.trans(v), input_precision=PREC)
        delta = tl.load(Delta + bh * NQ + offs_m, mask=offs_m < NQ, other=0.0)
        ds = p * (dp - delta[:, None])
        dk += tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision=PREC)
        dbias += tl.sum(ds, 0)
    part = tl.program_id(1).to(tl.int64)
    key_rows = (offs_n[:, None] < M)
    tl.store(DK + part * M * D + offs_n[:, None] * D + offs_d[None, :], (dk * SCALE).to(DK.dtype.element_ty), mask=key_rows & (offs_d[None, :] < D))
    tl.store(DVout + part * M * DV + offs_n[:, None] * DV + offs_e[None, :], dv.to(DVout.dtype.element_ty), mask=key_rows & (offs_e[None, :] < DV))
    if HAS_BIAS:
        tl.store(DBias + part * M + offs_n, dbias, mask=offs_n < M)


@triton.jit
def _attn_bwd_dq_kernel(
    Q, K, V, Bias, Lse, DO, Delta, DQ,
    NQ, M, D, DV, SCALE,
    HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, PREC: tl.constexpr,
):
    """dQ[q] = sum_n ds[q, n] k[n]."""
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    q = tl.load(Q + bh * NQ * D + offs_m[:, None] * D + offs_d[None, :], mask=(offs_m[:, None] < NQ) & (offs_d[None, :] < D), other=0.0)
    delta = tl.load(Delta + bh * NQ + offs_m, mask=offs_m < NQ, other=0.0)
    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    for start_n in range(0, M, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        p, k = _probs(q, K, Bias, Lse, bh, offs_m, offs_n, offs_d, NQ, M, D, SCALE, HAS_BIAS, PREC)
        dp = _dp_block(DO, V, bh, offs_m, offs_n, NQ, M, DV, BLOCK_M, BLOCK_N, BLOCK_DV, PREC)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k, input_precision=PREC)
    tl.store(DQ + bh * NQ * D + offs_m[:, None] * D + offs_d[None, :], (dq * SCALE).to(DQ.dtype.element_ty), mask=(offs_m[:, None] < NQ) & (offs_d[None, :] < D))


@triton.jit
def _attn_bwd_delta_kernel(Out, DO, GradLse, Delta, ROWS, DV, HAS_GLSE: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_DV: tl.constexpr):
    """delta[r] = dO[r] . out[r] (fp32) less the lse gradient when HAS_GLSE (FlashAttention's
    backward preprocessing), for BLOCK_R rows per program."""
    offs_r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    total = tl.zeros([BLOCK_R], dtype=tl.float32)
    for e0 in range(0, DV, BLOCK_DV):
        offs_e = e0 + tl.arange(0, BLOCK_DV)
        m = (offs_r[:, None] < ROWS) & (offs_e[None, :] < DV)
        at = offs_r[:, None].to(tl.int64) * DV + offs_e[None, :]
        total += tl.sum(tl.load(DO + at, mask=m, other=0.0).to(tl.float32) * tl.load(Out + at, mask=m, other=0.0).to(tl.float32), 1)
    if HAS_GLSE:
        total -= tl.load(GradLse + offs_r, mask=offs_r < ROWS, other=0.0).to(tl.float32)
    tl.store(Delta + offs_r, total, mask=offs_r < ROWS)


@triton.jit
def _sum_parts(Parts, Out, SPLITS, INNER, offs, outer):
    total = tl.zeros(offs.shape, dtype=tl.float32)
    for s in range(0, SPLITS):
        total += tl.load(Parts + (outer * SPLITS + s) * INNER + offs, mask=offs < INNER, other=0.0)
    tl.store(Out + outer * INNER + offs, total.to(Out.dtype.element_ty), mask=offs < INNER)


@triton.jit
def _sum_splits_kernel(PartsK, OutK, INNER_K, PartsV, OutV, INNER_V, PartsB, OutB, INNER_B, SPLITS, BLOCK: tl.constexpr):
    """Out[o, i] = sum over s of Parts[o, s, i] (fp32), cast to Out's dtype, for the key-side
    gradients' partials per query split: dK, dV and d(bias) (grid axis 2 picks which), one launch."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    outer = tl.program_id(1).to(tl.int64)
    which = tl.program_id(2)
    if which == 0:
        _sum_parts(PartsK, OutK, SPLITS, INNER_K, offs, outer)
    elif which == 1:
        _sum_parts(PartsV, OutV, SPLITS, INNER_V, offs, outer)
    else:
        _sum_parts(PartsB, OutB, SPLITS, INNER_B, offs, outer)


@triton.jit
def _attn_usage_kernel(
    Q, K, Bias, Lse, Usage,
    NQ, M, D, SCALE,
    HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PREC: tl.constexpr,
):
    """usage[n] = sum over queries of exp(s[q, n] - lse[q])."""
    pid_n = tl.program_id(0)
    bh = tl.program_id(1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    usage = tl.zeros([BLOCK_N], dtype=tl.float32)
    for start_m in range(0, NQ, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        q = tl.load(Q + bh * NQ * D + offs_m[:, None] * D + offs_d[None, :], mask=(offs_m[:, None] < NQ) & (offs_d[None, :] < D), other=0.0)
        p, k = _probs(q, K, Bias, Lse, bh, offs_m, offs_n, offs_d, NQ, M, D, SCALE, HAS_BIAS, PREC)
        usage += tl.sum(p, 0)
    tl.store(Usage + bh * M + offs_n, usage, mask=offs_n < M)


# ---------------------------------------------------------------------------------------------
# launchers


def gpu_blocks(width: int) -> dict:
    """Fixed tile sizes on a GPU for a kernel whose widest row (head or value dim, padded) is
    ``width``: sized for shared memory (an H100 / H200 program has at most 227 KB)."""
    if width > 128:
        return {"BLOCK_M": 32, "BLOCK_N": 32, "num_warps": 4}
    return {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4}


def key_side_width(d: int, dv: int) -> int:
    """The widest row the key-side backward holds: the padded head dim, or with dK and dV in one
    kernel (``_fused_key_grads``) the wider of it and the padded value width (that kernel keeps the
    whole value width in one slice)."""
    block_d = triton_sizes.block_d(d)
    return max(block_d, triton_sizes.block_d(dv)) if _fused_key_grads(dv) else block_d


def _blocks(width: int) -> dict:
    """Fixed tile sizes: small under the interpreter (it is slow), else ``gpu_blocks``."""
    if triton_sizes.interpreting():
        return {"BLOCK_M": 16, "BLOCK_N": 16}
    return gpu_blocks(width)


_rows = triton_sizes.dense_rows


def _check_inputs(q, k, v, bias) -> None:
    if q.shape[-1] > MAX_HEAD_DIM:
        raise ValueError(f"the triton backend supports D <= {MAX_HEAD_DIM}, got D = {q.shape[-1]}")
    if not (q.is_cuda or triton_sizes.interpreting()):
        raise ValueError("the triton backend needs CUDA tensors (or TRITON_INTERPRET=1)")


# Tuned per head sizes only: a memory bank grows frame by frame, and re-tuning at every new M would
# cost more than it gains.
_attn_fwd_tuned = TunedKernel(triton.autotune(configs=_fwd_configs(), key=["D", "DV"], prune_configs_by={"early_config_prune": _prune_fwd})(_attn_fwd_kernel))
# the kernels launched without the autotuner; on a GPU each launch of a specialization seen before
# skips the JIT's per-launch work (``Launcher``); ``_attn_fwd_tuned.launcher`` is the forward's
_attn_bwd_delta, _attn_bwd_dkdv, _attn_bwd_dv, _attn_bwd_dk, _attn_bwd_dq, _sum_splits, _attn_usage = (
    Launcher(kernel) for kernel in (
        _attn_bwd_delta_kernel, _attn_bwd_dkdv_kernel, _attn_bwd_dv_kernel, _attn_bwd_dk_kernel, _attn_bwd_dq_kernel, _sum_splits_kernel, _attn_usage_kernel,
    )
)


def _fwd(q, k, v, bias, scale: float, with_lse: bool = True):
    """(out [B, H, Nq, Dv], lse [B, H, Nq] float32, or None without ``with_lse``)."""
    _check_inputs(q, k, v, bias)
    b, h, nq, d = q.shape
    m, dv = k.shape[2], v.shape[3]
    qf, kf, vf = _rows(q), _rows(k), _rows(v)
    has_bias, biasf = triton_sizes.kernel_bias(bias, b * h, m, qf)
    out = torch.empty(b, h, nq, dv, device=q.device, dtype=q.dtype)  # written as [B*H, Nq, Dv] rows
    # no lse buffer when none is wanted (one allocation less: host time per call on a GPU); out
    # stands in for the pointer, unwritten
    lse = torch.empty(b, h, nq, device=q.device, dtype=torch.float32) if with_lse else None
    lse_arg = out if lse is None else lse
    block_d = triton_sizes.block_d(d)
    if not triton_autotune_enabled():  # the interpreter (no GPU driver to tune with) or MNEMOVISION_TRITON_AUTOTUNE=0
        cfg, block_dv = _blocks(block_d), triton_sizes.block_dv(dv)
        grid = (cdiv(nq, cfg["BLOCK_M"]), b * h, cdiv(dv, block_dv))
        _attn_fwd_tuned.launcher[grid](qf, kf, vf, biasf, out, lse_arg, nq, m, d, dv, scale, HAS_BIAS=has_bias, BLOCK_D=block_d, BLOCK_DV=block_dv, PREC=triton_sizes.precision(q.dtype), STORE_LSE=with_lse, **cfg)
    else:
        def grid(meta):
            return (cdiv(nq, meta["BLOCK_M"]), b * h, cdiv(dv, meta["BLOCK_DV"]))

        _attn_fwd_tuned[grid](qf, kf, vf, biasf, out, lse_arg, nq, m, d, dv, scale, HAS_BIAS=has_bias, BLOCK_D=block_d, PREC=triton_sizes.precision(q.dtype), STORE_LSE=with_lse)
    return out, lse


def _bwd(q, k, v, bias, out, lse, grad_out, grad_lse, scale: float):
    """(dq, dk, dv, dbias or None) of the dense readout; logits scale q.k + bias (no scaled copy of q:
    the kernels apply the scale). Launches: delta, dV and dK (+ d(bias)) (one launch for both where
    Dv <= FUSED_DV_MAX), dQ, and with query splits one more that sums the splits of all the
    key-side gradients."""
    b, h, nq, d = q.shape
    m, dv = k.shape[2], v.shape[3]
    qf, kf, vf = _rows(q), _rows(k), _rows(v)
    dof = torch.zeros_like(out) if grad_out is None else _rows(as_dtype(grad_out, q.dtype))
    has_bias, biasf = triton_sizes.kernel_bias(bias, b * h, m, qf)
    lsef = _rows(lse)
    rows = b * h * nq
    delta = torch.empty(b * h, nq, device=q.device, dtype=torch.float32)
    has_glse = grad_lse is not None
    glse = _rows(grad_lse) if has_glse else lsef
    block_r = 16
    _attn_bwd_delta[(cdiv(rows, block_r),)](out, dof, glse, delta, rows, dv, HAS_GLSE=has_glse, BLOCK_R=block_r, BLOCK_DV=triton_sizes.block_dv(dv))
    block_d, block_dv = triton_sizes.block_d(d), triton_sizes.block_dv(dv)
    cfg = _blocks(block_d)
    sizes = dict(HAS_BIAS=has_bias, BLOCK_D=block_d, BLOCK_DV=block_dv, PREC=triton_sizes.precision(q.dtype), **cfg)
    fuse = _fused_key_grads(dv)
    # the fused kernel's tiles are sized by the wider of D and Dv (D = 64, Dv = 130 in float32 on
    # 64 x 64 tiles asked for 263 KB of shared memory on an H200, over its 227 KB)
    key_cfg = _blocks(key_side_width(d, dv))
    n_blocks = cdiv(m, key_cfg["BLOCK_N"])
    splits, chunk = _query_splits(nq, key_cfg["BLOCK_M"], n_blocks * b * h, q.device, 1 if fuse else 2)
    dq = torch.empty_like(qf)
    if splits == 1:  # the gradients in their shapes and the input dtype, written directly (tl.store casts)
        dk, dvv = torch.empty_like(kf), torch.empty_like(vf)
        dbias = torch.empty(b, h, m, device=q.device, dtype=torch.float32) if has_bias else dk
    else:  # partial sums in fp32
        dk = torch.empty(splits, b * h, m, d, device=q.device, dtype=torch.float32)
        dvv = torch.empty(splits, b * h, m, dv, device=q.device, dtype=torch.float32)
        dbias = torch.empty(splits, b * h, m, device=q.device, dtype=torch.float32) if has_bias else dk
    # split s of (batch, head) bh writes partial number bh * splits + s of each buffer
    if fuse:  # dK, d(bias) and dV in one pass over the queries
        # the whole value width in one slice, padded as a head dim is
        fused = {**sizes, **key_cfg, "BLOCK_DV": triton_sizes.block_d(dv), "num_warps": 4 if triton_sizes.interpreting() else FUSED_WARPS}
        _attn_bwd_dkdv[(n_blocks, b * h * splits)](qf, kf, vf, biasf, lsef, dof, delta, dk, dvv, dbias, nq, m, d, dv, chunk, splits, scale, **fused)
    else:
        _attn_bwd_dv[(n_blocks, b * h * splits, cdiv(dv, block_dv))](qf, kf, biasf, lsef, dof, dvv, nq, m, d, dv, chunk, splits, scale, **sizes)
        _attn_bwd_dk[(n_blocks, b * h * splits)](qf, kf, vf, biasf, lsef, dof, delta, dk, dbias, nq, m, d, dv, chunk, splits, scale, **sizes)
    _attn_bwd_dq[(cdiv(nq, cfg["BLOCK_M"]), b * h)](qf, kf, vf, biasf, lsef, dof, delta, dq, nq, m, d, dv, scale, **sizes)

    if splits == 1:
        return dq, dk, dvv, dbias.to(bias.dtype) if has_bias else None
    # one launch sums the splits of dK, dV (and d(bias)), written in their shapes
    dk_total, dv_total = torch.empty_like(kf), torch.empty_like(vf)
    dbias_total = torch.empty(b, h, m, device=q.device, dtype=bias.dtype) if has_bias else None
    last = (dbias, dbias_total, m) if has_bias else (dk, dk_total, 0)
    grid = (cdiv(m * max(d, dv), 1024), b * h, 3 if has_bias else 2)
    _sum_splits[grid](dk, dk_total, m * d, dvv, dv_total, m * dv, *last, splits, BLOCK=1024)
    return dq, dk_total, dv_total, dbias_total


# The key-side backward in one kernel (``_attn_bwd_dkdv_kernel``) where the whole value width fits one
# slice of at most FUSED_DV_MAX (MCNet: Dv = 256), on FUSED_WARPS warps (its dK and dV accumulators
# are [BLOCK_N, D] and [BLOCK_N, Dv] fp32); wider values take the dV kernel per slice and the dK
# kernel. FUSE_KEY_GRADS False takes those two everywhere (``bench/attention_profile.py --key-grads``).
FUSE_KEY_GRADS = True
FUSED_DV_MAX = 256
FUSED_WARPS = 8


def _fused_key_grads(dv: int) -> bool:
    return FUSE_KEY_GRADS and dv <= FUSED_DV_MAX


def _query_splits(nq: int, block_m: int, programs: int, device, per_sm: int = 2) -> tuple[int, int]:
    """(splits, queries per split) for the key-side backward kernels: when the key blocks alone give
    too few programs to fill the GPU (MCNet: 1024 keys, 16384 queries), the query range is split and
    each split writes a partial sum: as many splits as keep every program resident at once with
    ``per_sm`` programs per SM (2 for the dK kernel; 1 for the fused dK + dV kernel, whose 242
    registers on 8 warps leave room for one), so no wave runs a short tail. Queries the SM count at
    call time (a fixed 8 under the interpreter, so the tests exercise splitting)."""
    sms = triton_sizes.sm_count(device)
    q_blocks = cdiv(nq, block_m)
    splits = max(1, min(q_blocks, per_sm * sms // max(1, programs)))
    chunk = cdiv(q_blocks, splits) * block_m
    return cdiv(nq, chunk), chunk


class _DenseTritonFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, bias, scale: float):
        out, lse = _fwd(q, k, v, bias, scale)
        ctx.save_for_backward(q, k, v, bias, out, lse)
        ctx.scale = scale
        ctx.set_materialize_grads(False)  # an unused lse gets None, not a zeros tensor to subtract
        return out, triton_sizes.lse_out(lse, q.dtype)

    @staticmethod
    def backward(ctx, grad_out, grad_lse):
        q, k, v, bias, out, lse = ctx.saved_tensors
        if grad_out is None and grad_lse is None:
            return None, None, None, None, None
        dq, dk, dv, dbias = _bwd(q, k, v, bias, out, lse, grad_out, grad_lse, ctx.scale)
        return dq, dk, dv, dbias, None


def dense_attention(q, k, v, bias, scale: float = 1.0, with_lse: bool = True):
    """(out [B, H, Nq, Dv], lse [B, H, Nq]) of dense softmax attention with logits scale q.k + bias
    (``bias`` [B, H, M] or None for none); differentiable in q, k, v, bias and through lse. Without
    anything to differentiate (inference, ``torch.no_grad``) the forward launches without autograd,
    and without ``with_lse`` there it neither allocates nor writes lse (returned as None)."""
    if triton_sizes.needs_grad(q, k, v, bias):
        return _DenseTritonFn.apply(q, k, v, bias, scale)
    out, lse = _fwd(q, k, v, bias, scale, with_lse)
    return out, triton_sizes.lse_out(lse, q.dtype)


def dense_usage(q, k, bias, lse, scale: float = 1.0):
    """usage [B, H, M] float32: the softmax weight each key received, summed over queries."""
    _check_inputs(q, k, None, bias)
    b, h, nq, d = q.shape
    m = k.shape[2]
    usage = torch.empty(b * h, m, device=q.device, dtype=torch.float32)
    block_d = triton_sizes.block_d(d)
    cfg = _blocks(block_d)
    grid = (cdiv(m, cfg["BLOCK_N"]), b * h)
    qf = _rows(q)
    has_bias, biasf = triton_sizes.kernel_bias(bias, b * h, m, qf)
    _attn_usage[grid](qf, _rows(k), biasf, lse.reshape(-1, nq).contiguous().float(), usage, nq, m, d, scale, HAS_BIAS=has_bias, BLOCK_D=block_d, PREC=triton_sizes.precision(q.dtype), **cfg)
    return usage.view(b, h, m).to(ref.usage_dtype(q.dtype))


def topk_readout(q, k, v, bias, top_k: int, scale: float = 1.0, with_lse: bool = True):
    """(out, lse, idx) of the top-k readout, selection and readout fused (``triton_topk``);
    differentiable in q, k, v, bias; an inference call without ``with_lse`` returns lse None."""
    _check_inputs(q, k, v, bias)
    return triton_topk.topk_readout(q, k, v, bias, top_k, scale, with_lse=with_lse)
