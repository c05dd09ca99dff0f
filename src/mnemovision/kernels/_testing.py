"""Parity helpers and the one tolerance table for kernel tests (imported by tests, not library code).

Rule (STYLE.md): a kernel's error against a float64 reference may be at most ``FACTOR`` times the
error of the same-precision PyTorch reference, plus a small floor per dtype.
"""

from __future__ import annotations

import torch

FACTOR = 2.0
FLOORS = {
    torch.float64: 1e-10,
    torch.float32: 2e-5,
    torch.float16: 2e-3,
    torch.bfloat16: 1.6e-2,
}


def max_abs_error(got: torch.Tensor, reference64: torch.Tensor) -> float:
    """Largest |got - reference| in float64, with NaN counted as an infinite error."""
    diff = (got.detach().double() - reference64.detach().double()).abs()
    if torch.isnan(diff).any():
        return float("inf")
    return float(diff.max()) if diff.numel() else 0.0


def assert_kernel_close(got: torch.Tensor, same_precision: torch.Tensor, reference64: torch.Tensor, name: str, factor: float = FACTOR) -> None:
    """Assert ``got`` is as close to the float64 reference as the same-precision PyTorch path is."""
    if got.shape != reference64.shape:
        raise AssertionError(f"{name}: shape {tuple(got.shape)} != reference {tuple(reference64.shape)}")
    err = max_abs_error(got, reference64)
    base = max_abs_error(same_precision, reference64)
    allowed = factor * base + FLOORS[got.dtype] * max(1.0, float(reference64.detach().abs().max()) if reference64.numel() else 1.0)
    if not err <= allowed:
        raise AssertionError(f"{name}: error {err:.3e} vs float64 exceeds {factor} x reference error {base:.3e} + floor ({allowed:.3e})")
