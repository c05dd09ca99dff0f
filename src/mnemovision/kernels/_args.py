"""Checks of scalar arguments shared by the kernels' public ops (tensors are checked where used)."""

from __future__ import annotations

import math
import numbers


def is_int(x) -> bool:
    """An integer (Python's or numpy's), not a bool."""
    return type(x) is int or (isinstance(x, numbers.Integral) and not isinstance(x, bool))


def finite_float(name: str, x) -> float:
    """``x`` as a float; ValueError naming ``name`` unless it is a finite real number (or a
    one-element tensor holding one)."""
    try:
        value = float(x)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must be a finite number, got {x!r}") from None
    if isinstance(x, (bool, str, bytes)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {x!r}")
    return value
