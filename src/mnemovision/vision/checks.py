"""Range checks of scalar arguments and config fields, with errors that name the value.

    check_int("n_views", n_views, 1)                       # an int >= 1 (numpy ints too, never a bool)
    check_real("fps", fps, 0, low_open=True)               # a positive finite number
    check_real("init_opacity", p, 0, 1, low_open=True, high_open=True)
"""

from __future__ import annotations

import math
import numbers

from mnemovision.kernels._args import is_int

__all__ = ["check_int", "check_real", "is_int"]


def check_int(name: str, value, low: int, high: int | None = None) -> int:
    """``value`` as an int; ValueError naming ``name`` unless it is an int in [low, high]."""
    if not is_int(value) or value < low or (high is not None and value > high):
        span = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be an int {span}, got {value!r}")
    return int(value)


def check_real(name: str, value, low: float = -math.inf, high: float = math.inf, *, low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float; ValueError naming ``name`` unless it is a finite real number (not a
    bool) between ``low`` and ``high``, each bound excluded when ``*_open``. NaN never passes."""
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    try:
        finite = real and math.isfinite(value)
    except OverflowError:  # an int with more digits than a float holds
        finite = False
    above = finite and (value > low if low_open else value >= low)
    below = finite and (value < high if high_open else value <= high)
    if not (above and below):
        raise ValueError(f"{name} must be {_describe(low, high, low_open, high_open)}, got {value!r:.80}")
    return float(value)


def _describe(low: float, high: float, low_open: bool, high_open: bool) -> str:
    if (low, high) == (-math.inf, math.inf):
        return "a finite number"
    if high == math.inf and low == 0:
        return "a positive finite number" if low_open else "a finite number >= 0"
    if high == math.inf:
        return f"a finite number {'>' if low_open else '>='} {low}"
    return f"a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
