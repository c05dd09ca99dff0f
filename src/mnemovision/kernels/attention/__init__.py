"""Memory attention: dense or top-k softmax readout of a memory bank, with usage statistics.

``memory_attention`` validates, reduces every similarity to "scaled dot product plus key bias"
(``ref.prepare``), then dispatches to the PyTorch path (``ref``: chunked, the CPU path and oracle) or
the Triton path (``triton_impl``, imported only when chosen).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mnemovision.kernels._args import finite_float, is_int
from mnemovision.kernels._backend import resolve_backend
from mnemovision.kernels.attention import ref

SIMILARITIES = ("dot", "cosine", "neg_l2")


@dataclass(frozen=True)
class AttentionOutput:
    """``out`` [B, H, Nq, Dv]; ``usage`` [B, H, M] (float32, float64 for float64 inputs; no grad) when asked for, else None."""

    out: torch.Tensor
    usage: torch.Tensor | None = None


def _check(name: str, t, ndim: int, expected: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor {expected}, got {type(t).__name__}")
    if t.ndim != ndim:
        raise ValueError(f"{name} must have shape {expected}, got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be floating point, got {t.dtype}")


def _validate(q, k, v, top_k, similarity, scale, temperature, key_padding_mask, extra_q_kv):
    _check("q", q, 4, "[B, H, Nq, D]")
    _check("k", k, 4, "[B, H, M, D]")
    _check("v", v, 4, "[B, H, M, Dv]")
    b, h, nq, d = q.shape
    m = k.shape[2]
    if k.shape[:2] != (b, h) or k.shape[3] != d:
        raise ValueError(f"k must have shape [B={b}, H={h}, M, D={d}], got {tuple(k.shape)}")
    if v.shape[:3] != (b, h, m):
        raise ValueError(f"v must have shape [B={b}, H={h}, M={m}, Dv], got {tuple(v.shape)}")
    if nq == 0 or d == 0 or v.shape[3] == 0:
        raise ValueError(f"q, k, v need Nq, D, Dv >= 1, got q {tuple(q.shape)}, v {tuple(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    if q.device.type == "cpu" and q.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"on CPU, q, k, v must be float32 or float64, got {q.dtype}")
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
    if scale is not None and temperature is not None:
        raise ValueError("pass scale or temperature (= 1 / scale), not both")
    if scale is not None:
        finite_float("scale", scale)
    if temperature is not None and not finite_float("temperature", temperature) > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if top_k is not None and (not is_int(top_k) or top_k < 1):
        raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
    if key_padding_mask is not None:
        if not isinstance(key_padding_mask, torch.Tensor) or key_padding_mask.dtype != torch.bool or key_padding_mask.shape != (b, m):
            got = tuple(key_padding_mask.shape) if isinstance(key_padding_mask, torch.Tensor) else type(key_padding_mask).__name__
            raise ValueError(f"key_padding_mask must be a bool tensor [B={b}, M={m}] (True = padded), got {got}")
    if extra_q_kv is not None:
        if not isinstance(extra_q_kv, (tuple, list)) or len(extra_q_kv) != 2:
            raise ValueError("extra_q_kv must be a pair (k_extra [B, H, Ne, D], v_extra [B, H, Ne, Dv])")
        ke, ve = extra_q_kv
        _check("extra_q_kv[0]", ke, 4, "[B, H, Ne, D]")
        _check("extra_q_kv[1]", ve, 4, "[B, H, Ne, Dv]")
        if ke.shape[:2] != (b, h) or ke.shape[3] != d or ve.shape[:3] != ke.shape[:3] or ve.shape[3] != v.shape[3]:
            raise ValueError(f"extra_q_kv must be ([{b}, {h}, Ne, {d}], [{b}, {h}, Ne, {v.shape[3]}]), got {tuple(ke.shape)}, {tuple(ve.shape)}")
        if ke.dtype != q.dtype or ve.dtype != q.dtype:
            raise ValueError(f"extra_q_kv must have q's dtype {q.dtype}")
    if m == 0 and (extra_q_kv is None or extra_q_kv[0].shape[2] == 0):
        raise ValueError("k and v have M = 0 memory slots and there are no extra keys to attend to")


def memory_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    top_k: int | None = None,
    similarity: str = "dot",
    scale: float | None = None,
    temperature: float | None = None,
    key_padding_mask: torch.Tensor | None = None,
    extra_q_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    return_usage: bool = False,
    backend: str = "auto",
):
    """Read a memory bank with softmax attention.

    Args:
        q: [B, H, Nq, D] queries. k: [B, H, M, D] memory keys. v: [B, H, M, Dv] memory values.
        top_k: None for dense attention; k to keep, per query, the k largest memory affinities and
            take the softmax over those only (gradients reach the selected keys and values).
        similarity: ``dot`` (q.k), ``cosine`` (of unit vectors), ``neg_l2`` (-|q - k|^2, XMem).
        scale / temperature: logits = scale * similarity; temperature = 1 / scale. Default scale is
            1/sqrt(D) for dot and neg_l2 and 1 for cosine (M3 uses temperature=0.05).
        key_padding_mask: [B, M] bool, True marks memory slots to ignore.
        extra_q_kv: (k_extra [B, H, Ne, D], v_extra [B, H, Ne, Dv]): keys always attended densely,
            in one joint softmax with the (top-k) memory keys (JointFormer's current-frame tokens).
        return_usage: also return usage [B, H, M]: the softmax weight each memory slot received,
            summed over queries (float32, no gradient), for memory managers.
        backend: ``auto``, ``torch`` or ``triton`` (see ``mnemovision.kernels.resolve_backend``).

    Returns:
        out [B, H, Nq, Dv], or ``AttentionOutput(out, usage)`` when ``return_usage``. A query whose
        keys are all masked gets zeros.
    """
    _validate(q, k, v, top_k, similarity, scale, temperature, key_padding_mask, extra_q_kv)
    if extra_q_kv is not None and extra_q_kv[0].shape[2] == 0:
        extra_q_kv = None  # no extra tokens: the memory alone
    top_k = None if top_k is None else int(top_k)  # numpy integers too
    chosen = resolve_backend(backend, q.device.type)
    if scale is None:
        scale = 1.0 / temperature if temperature is not None else ref.default_scale(similarity, q.shape[-1])
    # the Triton kernels skip an all-zero bias (None); the PyTorch path always gets a tensor
    zero_bias = chosen != "triton"
    qp, kp, bias, factor = ref.prepare(q, k, similarity, float(scale), key_padding_mask, zero_bias)
    m = k.shape[2]
    if top_k is not None and top_k >= m:
        top_k = None  # keeping every key is dense attention
    if chosen == "triton":
        from mnemovision.kernels.attention import triton_impl as impl
    else:
        impl = ref
    idx = None
    # lse only where it is used: merging extra tokens, usage (and inside autograd's backward)
    want_lse = return_usage or extra_q_kv is not None
    if m == 0:
        out = lse = None
    elif top_k is None:
        out, lse = impl.dense_attention(qp, kp, v, bias, factor, with_lse=want_lse)
    else:
        out, lse, idx = impl.topk_readout(qp, kp, v, bias, top_k, factor, with_lse=want_lse)
    if extra_q_kv is not None:
        ke, ve = extra_q_kv
        qe, ke, bias_e, factor_e = ref.prepare(q, ke, similarity, float(scale), None, zero_bias)
        out_e, lse_e = impl.dense_attention(qe, ke, ve, bias_e, factor_e)
        out, lse = (out_e, lse_e) if out is None else ref.merge(out, lse, out_e, lse_e)
    if not return_usage:
        return out
    if m == 0:
        usage = torch.zeros(k.shape[:3], dtype=ref.usage_dtype(q.dtype), device=q.device)
    elif idx is None:
        usage = impl.dense_usage(qp.detach(), kp.detach(), None if bias is None else bias.detach(), lse.detach(), factor)
    else:
        usage = ref.topk_usage(qp.detach(), kp.detach(), ref.bias_or_zeros(bias, kp).detach(), idx, lse.detach(), factor)
    return AttentionOutput(out=out, usage=usage)


__all__ = ["SIMILARITIES", "AttentionOutput", "memory_attention"]
