"""Launch sizes shared by the Triton attention kernels (``triton_impl``, ``triton_topk``).

Plain functions of the shapes and dtypes: nothing here queries a device.
"""

from __future__ import annotations

import torch

from mnemovision.kernels._launch import INTERPRETED, next_pow2

__all__ = ["block_d", "block_dv", "dense_rows", "interpreting", "kernel_bias", "lse_out", "needs_grad", "precision", "sm_count"]

_SM_COUNTS: dict = {}


def interpreting() -> bool:
    """True when the kernels run under the Triton interpreter (see ``mnemovision.kernels._launch``)."""
    return INTERPRETED


def block_d(d: int) -> int:
    """Head-dim tile: D rounded up to a power of two, at least 16 (``tl.dot``'s minimum)."""
    return max(16, next_pow2(d))


def block_dv(dv: int) -> int:
    """Value-dim slice per program: Dv rounded up to a power of two, 16 to 128."""
    return min(128, max(16, next_pow2(dv)))


def precision(dtype: torch.dtype) -> str:
    """fp32 tiles multiply in full IEEE precision (Triton's default would be TF32); 16-bit ones natively."""
    return "ieee" if dtype in (torch.float32, torch.float64) else "tf32"


def dense_rows(t: torch.Tensor) -> torch.Tensor:
    """``t`` [B, H, L, E] in the layout the kernels address ([B*H, L, E] rows, contiguous): ``t``
    itself when it is contiguous (the same memory; no view is made, each costs the host about a
    microsecond), else a contiguous copy."""
    return t if t.is_contiguous() else t.contiguous()


def lse_out(lse: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """The float32 log-sum-exp the kernels write, as the launchers return it: in float64 for
    float64 inputs (the interpreter's oracle tests), else float32 as it is; None (an inference call
    without lse) stays None."""
    return lse.to(dtype) if (lse is not None and dtype == torch.float64) else lse


def needs_grad(*tensors) -> bool:
    """True when autograd would record an op on these tensors (None entries ignored): the launchers
    take the autograd.Function only then (its apply costs the host a few microseconds per call)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def sm_count(device: torch.device) -> int:
    """Multiprocessors of a CUDA device (8 under the interpreter), asked once per device."""
    if INTERPRETED:
        return 8
    count = _SM_COUNTS.get(device)
    if count is None:
        count = _SM_COUNTS[device] = torch.cuda.get_device_properties(device).multi_processor_count
    return count


def kernel_bias(bias, bh: int, m: int, placeholder: torch.Tensor) -> tuple[bool, torch.Tensor]:
    """(HAS_BIAS, Bias argument) for the kernels, which skip an absent bias: the contiguous float32
    [B*H, M] bias, or ``placeholder`` (any tensor: a pointer the kernel never reads) when ``bias`` is None."""
    if bias is None:
        return False, placeholder
    return True, bias.reshape(bh, m).contiguous().float()
