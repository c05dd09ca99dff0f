"""Memory attention in plain PyTorch: the materialised reference, and the chunked CPU path.

Every similarity reduces to scaled dot products plus a per-key bias:

- ``dot``:    s = scale * q.k
- ``cosine``: s = scale * q^.k^ with q^, k^ unit vectors (scale = 1 / temperature)
- ``neg_l2``: s = -scale * |q - k|^2 = scale * (2 q.k - |k|^2) - scale * |q|^2; the last term is the
  same for every key of a query, so softmax and top-k ignore it, and it is dropped (as XMem does).

``prepare`` turns (q, k, similarity, scale, key_padding_mask) into (q', k', bias, c) with
``s = c q'.k' + bias``; a padded key gets bias -inf. The kernels then only know "scaled dot product
plus key bias", in both backends, and autograd carries gradients through ``prepare``. The factor c
is applied per chunk of queries (never a scaled copy of the whole q).

Shapes: q [B, H, Nq, D], k [B, H, M, D], v [B, H, M, Dv], bias [B, H, M]; out [B, H, Nq, Dv];
lse [B, H, Nq] (log-sum-exp of each query's logits); usage [B, H, M].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Queries per chunk in the CPU path: bounds the [chunk, M] logits block held at any time. By default
# the chunk is sized so a block holds about BLOCK_ELEMENTS logits (a few MB: the elementwise passes
# over it then run from cache), at most DEFAULT_CHUNK queries.
DEFAULT_CHUNK = 512
BLOCK_ELEMENTS = 1 << 21
# Backward tiles: [rows, keys] blocks of about this many logits (half a MB in float32, two live).
BACKWARD_TILE_ELEMENTS = 1 << 17
LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453
# Top-k selection holds a [chunk, M] logits block; smaller chunks keep it in cache and out of the peak.
TOPK_CHUNK = 64


def prepare(q, k, similarity: str, scale: float, key_padding_mask, zero_bias: bool = True):
    """(q', k', bias, c) with logits = c q' k'^T + bias[..., None, :]; differentiable in q and k.

    With ``zero_bias=False`` a bias that would be all zeros (dot or cosine, no mask) is None instead
    (the Triton kernels then skip it; ``bias_or_zeros`` gives the tensor back)."""
    factor = scale
    bias = None
    if similarity == "cosine":
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
    elif similarity == "neg_l2":
        bias = -scale * k.pow(2).sum(-1)
        factor = 2.0 * scale
    if key_padding_mask is not None:
        bias = bias_or_zeros(bias, k).masked_fill(key_padding_mask[:, None, :], float("-inf"))
    if zero_bias:
        bias = bias_or_zeros(bias, k)
    return q, k, bias, float(factor)


def bias_or_zeros(bias, k):
    """``bias`` [B, H, M], or zeros of k's dtype where it is None."""
    return torch.zeros(k.shape[:-1], dtype=k.dtype, device=k.device) if bias is None else bias


def _safe_lse(logits: torch.Tensor) -> torch.Tensor:
    """logsumexp over the last dim; a row of only -inf gives -inf (and no NaN downstream)."""
    return torch.logsumexp(logits, dim=-1)


def _weights(logits: torch.Tensor, lse: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """softmax given its log-normaliser; rows whose lse is -inf (every key masked) give zeros.

    ``inplace`` reuses ``logits``' memory (only for temporaries outside autograd)."""
    if inplace and bool(torch.isfinite(lse).all()):
        return logits.sub_(lse[..., None]).exp_()
    finite = torch.isfinite(lse)
    shifted = logits - torch.where(finite, lse, torch.zeros_like(lse))[..., None]
    return torch.where(finite[..., None], torch.exp(shifted), torch.zeros_like(shifted))


def _exp2_shifted_(logits2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """In place (a temporary outside autograd), on base-2 logits (natural logits x LOG2E):
    logits2 <- 2^(logits2 - row max). Returns the row sums [..., 1] and the natural log-sum-exp
    [...]; a row of only -inf becomes zeros with sum 0 and lse -inf. (``exp2`` is several times
    faster than ``exp`` on the CPU, so the chunked path works in base 2, as flash kernels do.)"""
    top = logits2.amax(-1, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    logits2.sub_(top).exp2_()
    total = logits2.sum(-1, keepdim=True)
    return total, ((top + total.log2()) * LN2).squeeze(-1)


def _exp2_weights_(logits2: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
    """In place: softmax weights 2^(logits2 - lse x LOG2E) from base-2 logits and the natural
    log-sum-exp [...]; rows whose lse is -inf (every key masked) give zeros."""
    finite = torch.isfinite(lse)
    if bool(finite.all()):
        return logits2.sub_((lse * LOG2E)[..., None]).exp2_()
    logits2.sub_(torch.where(finite, lse * LOG2E, torch.zeros_like(lse))[..., None]).exp2_()
    return logits2.masked_fill_(~finite[..., None], 0.0)


def _live_bias(bias: torch.Tensor, factor: float = 1.0) -> torch.Tensor | None:
    """factor x bias, or None when bias is all zeros (dot / cosine without padding), so adding it is
    skipped."""
    if not bool(bias.ne(0).any()):
        return None
    return bias if factor == 1.0 else bias * factor


def _scaled_logits(q_chunk, kt, bias, scale: float, out: torch.Tensor | None = None) -> torch.Tensor:
    """[..., c, M] logits scale (q k^T) + bias of a query chunk, the scale applied inside the GEMM
    (into ``out`` when given); bias [..., M] or None when zero. Base-2 logits: scale and bias x LOG2E."""
    if out is None:
        out = q_chunk.new_empty(*q_chunk.shape[:-1], kt.shape[-1])
    logits = _gemm_(out, q_chunk, kt, alpha=scale, beta=0.0)
    return logits if bias is None else logits.add_(bias[..., None, :])


def _rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum(a * b, -1) for [..., N, E] tensors as a batched matmul (no [N, E] temporary)."""
    return torch.matmul(a.unsqueeze(-2), b.unsqueeze(-1)).squeeze(-1).squeeze(-1)


def _gemm_(target: torch.Tensor, a: torch.Tensor, b: torch.Tensor, alpha: float = 1.0, beta: float = 1.0) -> torch.Tensor:
    """target [..., X, Y] <- beta target + alpha a [..., X, c] @ b [..., c, Y], inside the GEMM (no
    [X, Y] temporary when target is contiguous; beta = 0 ignores target's contents). Returns target."""
    x, y = target.shape[-2:]
    a3, b3 = a.reshape(-1, x, a.shape[-1]), b.reshape(-1, b.shape[-2], y)
    if target.is_contiguous():
        target.view(-1, x, y).baddbmm_(a3, b3, beta=beta, alpha=alpha)
    else:
        target.copy_(torch.baddbmm(target.reshape(-1, x, y), a3, b3, beta=beta, alpha=alpha).view(target.shape))
    return target


def dense_chunk(m: int) -> int:
    """Queries per chunk for M keys: about BLOCK_ELEMENTS logits per block, 16 to DEFAULT_CHUNK rows."""
    return max(16, min(DEFAULT_CHUNK, BLOCK_ELEMENTS // max(1, m)))


# ---------------------------------------------------------------------------------------------
# materialised reference (the test oracle and the "naive" benchmark peer)


def attention_naive(q, k, v, bias, top_k: int | None = None, scale: float = 1.0):
    """Materialise the [Nq, M] logits; plain autograd. Returns (out, lse, weights [B, H, Nq, M])."""
    logits = (q * scale) @ k.transpose(-1, -2) + bias[..., None, :]
    if top_k is not None and top_k < logits.shape[-1]:
        vals, idx = torch.topk(logits, top_k, dim=-1)
        logits = torch.full_like(logits, float("-inf")).scatter(-1, idx, vals)
    lse = _safe_lse(logits)
    weights = _weights(logits, lse)
    return weights @ v, lse, weights


def attention_naive_topk_gather(q, k, v, bias, top_k: int, scale: float = 1.0):
    """The usual top-k implementation (materialise logits, ``torch.topk``, gather the values): the
    benchmark's naive peer for top-k. Returns out [B, H, Nq, Dv]."""
    logits = (q * scale) @ k.transpose(-1, -2) + bias[..., None, :]
    vals, idx = torch.topk(logits, top_k, dim=-1)
    weights = torch.softmax(vals, dim=-1)
    return torch.einsum("bhqk,bhqke->bhqe", weights, _gather_rows(v, idx))


# ---------------------------------------------------------------------------------------------
# chunked dense attention: flash-style on the CPU (nothing of size [Nq, M] is ever held)


class _BlockPool:
    """Reusable [..., rows, cols] work blocks for a chunk loop: one allocation per block for the
    whole loop instead of one per chunk (the allocator otherwise keeps several freed blocks
    resident). Blocks are numbered by ``slot``; a smaller (last) chunk gets a fresh tensor."""

    def __init__(self, like: torch.Tensor, rows: int, cols: int):
        self.shape = (*like.shape[:-2], min(rows, like.shape[-2]), cols)
        self.like = like
        self.blocks: dict[int, torch.Tensor] = {}

    def get(self, slot: int, rows: int, cols: int | None = None) -> torch.Tensor:
        """Block ``slot`` of ``rows`` x ``cols`` (default: the pool's columns)."""
        shape = (*self.shape[:-2], rows, self.shape[-1] if cols is None else cols)
        if shape != self.shape:
            return self.like.new_empty(shape)
        if slot not in self.blocks:
            self.blocks[slot] = self.like.new_empty(self.shape)
        return self.blocks[slot]


class _DenseChunkedFn(torch.autograd.Function):
    """Dense softmax attention computed over query chunks; the backward recomputes the weights tile
    by tile from the saved log-sum-exp, so neither pass holds more than a [chunk, M] block."""

    @staticmethod
    def forward(ctx, q, k, v, bias, scale: float, chunk: int, backward_rows: int, key_tile: int):
        out = q.new_empty(*q.shape[:-1], v.shape[-1])
        lse = q.new_empty(q.shape[:-1])
        kt = k.transpose(-1, -2)
        bias2 = _live_bias(bias, LOG2E)
        blocks = _BlockPool(q, chunk, k.shape[-2])
        for start in range(0, q.shape[-2], chunk):
            sl = slice(start, start + chunk)
            qc = q[..., sl, :]
            logits2 = _scaled_logits(qc, kt, bias2, scale * LOG2E, out=blocks.get(0, qc.shape[-2]))
            total, chunk_lse = _exp2_shifted_(logits2)
            # normalise the [chunk, Dv] result rather than the [chunk, M] weights
            _gemm_(out[..., sl, :], logits2, v, beta=0.0).div_(torch.where(total > 0, total, torch.ones_like(total)))
            lse[..., sl] = chunk_lse
        ctx.save_for_backward(q, k, v, bias, out, lse)
        ctx.rows, ctx.key_tile = backward_rows, key_tile
        ctx.bias2 = bias2
        ctx.scale = scale
        return out, lse

    @staticmethod
    def backward(ctx, grad_out, grad_lse):
        q, k, v, bias, out, lse = ctx.saved_tensors
        rows, cols, scale2 = ctx.rows, ctx.key_tile, ctx.scale * LOG2E
        grad_out = torch.zeros_like(out) if grad_out is None else grad_out
        delta = _rowdot(grad_out, out)  # rowsum(dO * O) = sum_m p * (dO . v_m)
        if grad_lse is not None:
            delta = delta - grad_lse  # d lse / d s = p, so ds = p * (dp - delta + dlse)
        dq = torch.zeros(q.shape, dtype=q.dtype, device=q.device)
        dk = torch.zeros_like(k, memory_format=torch.contiguous_format)
        dv = torch.zeros_like(v, memory_format=torch.contiguous_format)
        want_dbias = ctx.needs_input_grad[3]
        dbias = torch.zeros_like(bias) if want_dbias else None
        kt, vt = k.transpose(-1, -2), v.transpose(-1, -2)
        bias2 = ctx.bias2
        # [rows, cols] tiles: lse is known, so each tile's weights need no other tile; two tile
        # buffers are reused throughout, and every GEMM still has a long side.
        tiles = _BlockPool(q, rows, min(cols, k.shape[-2]))
        for r0 in range(0, q.shape[-2], rows):
            rs = slice(r0, r0 + rows)
            qc, go, lse_c, delta_c = q[..., rs, :], grad_out[..., rs, :], lse[..., rs], delta[..., rs, None]
            for c0 in range(0, k.shape[-2], cols):
                cs = slice(c0, c0 + cols)
                n, w = qc.shape[-2], min(cols, k.shape[-2] - c0)
                logits2 = _scaled_logits(qc, kt[..., cs], None if bias2 is None else bias2[..., cs], scale2, out=tiles.get(0, n, w))
                p = _exp2_weights_(logits2, lse_c)
                _gemm_(dv[..., cs, :], p.transpose(-1, -2), go)
                ds = p.mul_(_gemm_(tiles.get(1, n, w), go, vt[..., cs], beta=0.0).sub_(delta_c))
                _gemm_(dq[..., rs, :], ds, k[..., cs, :], alpha=ctx.scale)
                _gemm_(dk[..., cs, :], ds.transpose(-1, -2), qc, alpha=ctx.scale)
                if want_dbias:
                    dbias[..., cs] += ds.sum(-2)
        return dq, dk, dv, dbias, None, None, None, None


def dense_attention(q, k, v, bias, scale: float = 1.0, with_lse: bool = True, chunk: int | None = None, key_tile: int | None = None):
    """(out, lse) of dense softmax attention; both differentiable, memory bounded by ``chunk``
    queries at a time (default ``dense_chunk(M)``). ``with_lse`` is the Triton path's switch (it
    skips lse where it is not wanted); here lse comes with every chunk. The backward works on [rows, key_tile] tiles
    (default ``chunk`` or DEFAULT_CHUNK rows, ``key_tile`` or BACKWARD_TILE_ELEMENTS / rows keys):
    many rows keep the dK / dV accumulation cheap, the key tiles keep its buffers small."""
    rows = chunk or DEFAULT_CHUNK
    cols = key_tile or max(1, BACKWARD_TILE_ELEMENTS // rows)
    return _DenseChunkedFn.apply(q, k, v, bias, scale, chunk or dense_chunk(k.shape[-2]), rows, cols)


def dense_usage(q, k, bias, lse, scale: float = 1.0, chunk: int = DEFAULT_CHUNK):
    """usage [B, H, M] = sum over queries of exp(s - lse): the weight each key received (no grad)."""
    with torch.no_grad():
        usage = torch.zeros(bias.shape, dtype=usage_dtype(q.dtype), device=bias.device)
        kt = k.transpose(-1, -2)
        bias2 = _live_bias(bias, LOG2E)
        for start in range(0, q.shape[-2], chunk):
            sl = slice(start, start + chunk)
            logits2 = _scaled_logits(q[..., sl, :], kt, bias2, scale * LOG2E)
            usage += _exp2_weights_(logits2, lse[..., sl]).sum(-2).to(usage.dtype)
        return usage


# ---------------------------------------------------------------------------------------------
# top-k: chunked selection, then a gather readout over the selected keys only


def topk_select(q, k, bias, top_k: int, scale: float = 1.0, chunk: int = TOPK_CHUNK):
    """Indices [B, H, Nq, top_k] of each query's largest logits, chunk by chunk (no grad)."""
    with torch.no_grad():
        idx = torch.empty(*q.shape[:-1], top_k, dtype=torch.long, device=q.device)
        kt = k.transpose(-1, -2)
        bias = _live_bias(bias)
        blocks = _BlockPool(q, chunk, k.shape[-2])
        for start in range(0, q.shape[-2], chunk):
            sl = slice(start, start + chunk)
            qc = q[..., sl, :]
            logits = _scaled_logits(qc, kt, bias, scale, out=blocks.get(0, qc.shape[-2]))
            idx[..., sl, :] = topk_columns(logits, top_k)
        return idx


SELECT_TILE = 32


def topk_columns(logits: torch.Tensor, top_k: int, tile: int = SELECT_TILE) -> torch.Tensor:
    """Column indices [..., top_k] (unordered) of each row's top_k values of logits [..., M].

    Exact, and cheaper than ``torch.topk`` over M for long rows: the row's maximum per tile of
    ``tile`` columns (one vectorised pass), the top_k tiles, then the top_k of their top_k * tile
    columns (the k-th value is at least the k-th tile maximum, so the top-k columns lie in those
    tiles; see ``triton_topk``). Candidate columns past M get -inf and in-range ones a finite floor,
    so padding never outranks a real column."""
    m = logits.shape[-1]
    n_full = m // tile
    if n_full < 4 * top_k:  # short rows: the tiles would not pay off
        return torch.topk(logits, top_k, dim=-1, sorted=False).indices
    tile_max = logits[..., : n_full * tile].unflatten(-1, (n_full, tile)).amax(-1)
    if n_full * tile < m:
        tile_max = torch.cat([tile_max, logits[..., n_full * tile :].amax(-1, keepdim=True)], dim=-1)
    tiles = torch.topk(tile_max, top_k, dim=-1, sorted=False).indices
    cols = (tiles[..., None] * tile + torch.arange(tile, device=logits.device)).flatten(-2)
    cand = logits.gather(-1, cols.clamp(max=m - 1)).clamp_(min=torch.finfo(logits.dtype).min)
    cand.masked_fill_(cols >= m, float("-inf"))
    return cols.gather(-1, torch.topk(cand, top_k, dim=-1, sorted=False).indices)


def _flat_index(idx: torch.Tensor, m: int) -> torch.Tensor:
    """idx [B, H, c, K] into M rows per (batch, head) -> flat row numbers into [B*H*M]."""
    offsets = torch.arange(idx.shape[0] * idx.shape[1], device=idx.device).view(idx.shape[0], idx.shape[1], 1, 1) * m
    return (idx + offsets).reshape(-1)


def _gather_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x [B, H, M, E] (contiguous), idx [B, H, c, K] -> [B, H, c, K, E] (``index_select``: fast on CPU)."""
    b, h, m, e = x.shape
    return x.reshape(b * h * m, e).index_select(0, _flat_index(idx, m)).view(*idx.shape, e)


def _scatter_rows_(target: torch.Tensor, idx: torch.Tensor, src: torch.Tensor) -> None:
    """target [B, H, M, E] (contiguous) += src [B, H, c, K, E] at rows idx [B, H, c, K]."""
    b, h, m, e = target.shape
    target.view(b * h * m, e).index_add_(0, _flat_index(idx, m), src.reshape(-1, e))


def _selected_logits(q, k, bias, idx):
    """s [B, H, c, K] = q . k[idx] + bias[idx] for a chunk of queries q [B, H, c, D]; also k[idx]."""
    kg = _gather_rows(k, idx)
    logits = torch.matmul(kg, q[..., None]).squeeze(-1)
    return logits.add_(_gather_rows(bias[..., None], idx).squeeze(-1)), kg


class _TopkGatherFn(torch.autograd.Function):
    """Softmax over the selected keys only; gradients reach q and the selected k, v and bias."""

    @staticmethod
    def forward(ctx, q, k, v, bias, idx, scale: float, chunk: int):
        k, v, bias = k.contiguous(), v.contiguous(), bias.contiguous()
        out = q.new_empty(*q.shape[:-1], v.shape[-1])
        lse = q.new_empty(q.shape[:-1])
        for start in range(0, q.shape[-2], chunk):
            sl = slice(start, start + chunk)
            ci = idx[..., sl, :]
            logits, _ = _selected_logits(q[..., sl, :] * scale, k, bias, ci)
            chunk_lse = _safe_lse(logits)
            weights = _weights(logits, chunk_lse, inplace=True)
            out[..., sl, :] = torch.matmul(weights[..., None, :], _gather_rows(v, ci)).squeeze(-2)
            lse[..., sl] = chunk_lse
        ctx.save_for_backward(q, k, v, bias, idx, out, lse)
        ctx.chunk = chunk
        ctx.scale = scale
        return out, lse

    @staticmethod
    def backward(ctx, grad_out, grad_lse):
        q, k, v, bias, idx, out, lse = ctx.saved_tensors
        grad_out = torch.zeros_like(out) if grad_out is None else grad_out
        delta = _rowdot(grad_out, out)
        if grad_lse is not None:
            delta = delta - grad_lse
        dq = torch.zeros_like(q)
        dk = torch.zeros_like(k, memory_format=torch.contiguous_format)
        dv = torch.zeros_like(v, memory_format=torch.contiguous_format)
        dbias = torch.zeros_like(bias, memory_format=torch.contiguous_format)
        for start in range(0, q.shape[-2], ctx.chunk):
            sl = slice(start, start + ctx.chunk)
            ci = idx[..., sl, :]
            qc, go = q[..., sl, :] * ctx.scale, grad_out[..., sl, :]
            logits, kg = _selected_logits(qc, k, bias, ci)
            p = _weights(logits, lse[..., sl], inplace=True)
            ds = torch.matmul(_gather_rows(v, ci), go[..., None]).squeeze(-1).sub_(delta[..., sl, None]).mul_(p)
            dq[..., sl, :] = torch.matmul(ds[..., None, :], kg).squeeze(-2).mul_(ctx.scale)
            _scatter_rows_(dk, ci, ds[..., None] * qc[..., None, :])
            _scatter_rows_(dv, ci, p[..., None] * go[..., None, :])
            _scatter_rows_(dbias[..., None], ci, ds[..., None])
        return dq, dk, dv, dbias, None, None, None


def topk_attention(q, k, v, bias, idx, scale: float = 1.0, chunk: int = TOPK_CHUNK):
    """(out, lse) of softmax attention restricted to the keys in ``idx``; both differentiable."""
    return _TopkGatherFn.apply(q, k, v, bias, idx, scale, chunk)


def topk_readout(q, k, v, bias, top_k: int, scale: float = 1.0, with_lse: bool = True):
    """(out, lse, idx [B, H, Nq, top_k]): the top_k selection, then the readout of those keys
    (``with_lse`` is the Triton path's switch; here lse always comes along)."""
    idx = topk_select(q, k, bias, top_k, scale)
    out, lse = topk_attention(q, k, v, bias, idx, scale)
    return out, lse, idx


def topk_usage(q, k, bias, idx, lse, scale: float = 1.0, chunk: int = TOPK_CHUNK):
    """usage [B, H, M] of a top-k readout: each selected key's final weight exp(s - lse), summed."""
    with torch.no_grad():
        usage = torch.zeros(bias.shape, dtype=usage_dtype(q.dtype), device=bias.device)
        k, bias = k.contiguous(), bias.contiguous()
        for start in range(0, q.shape[-2], chunk):
            sl = slice(start, start + chunk)
            ci = idx[..., sl, :]
            logits, _ = _selected_logits(q[..., sl, :] * scale, k, bias, ci)
            _scatter_rows_(usage[..., None], ci, _weights(logits, lse[..., sl], inplace=True).to(usage.dtype)[..., None])
        return usage


def merge(out_a, lse_a, out_b, lse_b):
    """Combine two attentions over disjoint key sets into the attention over their union."""
    lse = torch.logaddexp(lse_a, lse_b)
    finite = torch.isfinite(lse)
    safe = torch.where(finite, lse, torch.zeros_like(lse))
    wa = torch.where(finite, torch.exp(lse_a - safe), torch.zeros_like(lse))
    wb = torch.where(finite, torch.exp(lse_b - safe), torch.zeros_like(lse))
    return wa[..., None] * out_a + wb[..., None] * out_b, lse


def usage_dtype(dtype: torch.dtype) -> torch.dtype:
    """Usage accumulates in float64 for float64 inputs, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def default_scale(similarity: str, head_dim: int) -> float:
    """1/sqrt(D) for dot and neg_l2 (the usual attention scale), 1 for cosine."""
    return 1.0 if similarity == "cosine" else 1.0 / math.sqrt(head_dim)
