"""Parity helpers and the one tolerance table for kernel tests (imported by tests, not library code).

Rule (STYLE.md): a kernel's error against a float64 reference may be at most ``FACTOR`` times the
error of the same-precision PyTorch reference, plus a small floor per dtype.
"""

from __future__ import annotations

import math

import torch

FACTOR = 2.0
FLOORS = {
    torch.float64: 1e-10,
    torch.float32: 2e-5,
    torch.float16: 2e-3,
    torch.bfloat16: 1.6e-2,
}


def max_abs_error(got: torch.Tensor, reference64: torch.Tensor) -> float:
    """Largest |got - reference| in float64 (the reference is not rounded to got's dtype), with NaN
    counted as an infinite error and equal infinities (a fully masked row's -inf) as none."""
    g, r = got.detach().double(), reference64.detach().double()
    diff = torch.where(g == r, torch.zeros_like(g), (g - r).abs())
    if torch.isnan(diff).any():
        return float("inf")
    return float(diff.max()) if diff.numel() else 0.0


def assert_kernel_close(got: torch.Tensor, same_precision: torch.Tensor, reference64: torch.Tensor, name: str, factor: float = FACTOR) -> None:
    """Assert ``got`` is as close to the float64 reference as the same-precision PyTorch path is:
    within ``factor`` times that path's largest error plus the dtype's floor (scaled by the
    reference's largest finite magnitude when above 1). A same-precision path that is NaN, or off by
    an infinity, sets no tolerance: that fails too, instead of letting anything through."""
    if got.shape != reference64.shape:
        raise AssertionError(f"{name}: shape {tuple(got.shape)} != reference {tuple(reference64.shape)}")
    err = max_abs_error(got, reference64)
    base = max_abs_error(same_precision, reference64)
    if base == math.inf:
        raise AssertionError(f"{name}: the same-precision PyTorch path is NaN or infinitely far from float64, so it sets no tolerance")
    ref = reference64.detach()
    finite = ref[torch.isfinite(ref)]  # an infinite entry does not widen the floor
    allowed = factor * base + FLOORS[got.dtype] * max(1.0, float(finite.abs().max()) if finite.numel() else 1.0)
    if not err <= allowed:
        raise AssertionError(f"{name}: error {err:.3e} vs float64 exceeds {factor} x reference error {base:.3e} + floor ({allowed:.3e})")
