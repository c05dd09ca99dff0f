"""Host-side helpers for the Triton launchers (imported only where Triton is used).

A launch's host time is what a caller waits for when the GPU work is small (one top-k readout,
a dense readout of a small memory), so the launchers keep their own arithmetic cheap:

- ``cdiv`` and ``next_pow2``: the launch-grid arithmetic in plain Python. Triton's ``triton.cdiv``
  and ``triton.next_power_of_2`` are constexpr functions in recent releases, and each host call
  unwraps its arguments through Triton's machinery (microseconds per call; a launch computes several).
- ``INTERPRETED``: whether this process's kernels were decorated under ``TRITON_INTERPRET=1``,
  which decides how they launch. Triton reads the variable once, when ``@triton.jit`` decorates a
  kernel; this module's probe kernel is decorated the same way at the same time, so the answer is a
  fact about the loaded kernels, asked at every launch for the price of a global lookup.
- ``TunedKernel``: an autotuned kernel that consults Triton's autotuner once per launch signature.
- ``carve``: several tensors as views of one buffer (one allocation or fill, one op per view).
"""

from __future__ import annotations

import torch
import triton
from triton.runtime.interpreter import InterpretedFunction

__all__ = ["INTERPRETED", "TunedKernel", "carve", "cdiv", "next_pow2"]


@triton.jit
def _probe():
    pass


INTERPRETED = isinstance(_probe, InterpretedFunction)


def cdiv(a: int, b: int) -> int:
    """ceil(a / b) for ints, b > 0."""
    return -(-a // b)


def next_pow2(n: int) -> int:
    """The smallest power of two >= n for n >= 1 (0 for n = 0, as ``triton.next_power_of_2``)."""
    return 0 if n <= 0 else 1 << (n - 1).bit_length()


def carve(buffer: torch.Tensor, shapes) -> list[torch.Tensor]:
    """Consecutive contiguous views of the 1-D ``buffer``, from its start, with the given shapes: one
    ``as_strided`` op each (a slice and a view would be two; each op costs the host microseconds
    on a GPU)."""
    parts, start = [], 0
    for shape in shapes:
        strides, size = [], 1
        for extent in reversed(shape):
            strides.insert(0, size)
            size *= extent
        parts.append(buffer.as_strided(tuple(shape), tuple(strides), start))
        start += size
    return parts


class TunedKernel:
    """An autotuned kernel (``triton.autotune(...)(kernel)``) that asks its autotuner once per launch
    signature.

    Triton's ``Autotuner.run`` rebuilds its cache key from every argument at every launch (about
    8 us per launch on this project's 2-core machine; many of these kernels take less on an H100).
    Here the first launch of each signature goes through the autotuner (which benchmarks the
    candidates if its own key is new) and records the config it chose; later launches call the
    kernel directly with that config's settings, which is what the autotuner does after its cache
    lookup. The signature (the autotuner's key arguments, the dtypes of the tensor arguments and
    every keyword argument, the settings candidates are pruned by) is never coarser than the
    autotuner's own key. A config with a ``pre_hook`` always launches through the autotuner.
    Attributes not defined here (``configs``, ``best_config``, ``configs_timings``) are the
    autotuner's.
    """

    def __init__(self, autotuner):
        self.autotuner = autotuner
        self.kernel = autotuner.fn
        self._key_slots = tuple((autotuner.arg_names.index(name), name) for name in autotuner.keys)
        self._chosen: dict = {}

    def __getattr__(self, name):
        if name == "autotuner":  # not set yet (copying, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.autotuner, name)

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            return self.run(grid, args, kwargs)

        return launch

    def _signature(self, args, kwargs) -> tuple:
        """(key arguments, dtypes of the tensor arguments, keyword names and settings), built in one
        list (this runs at every launch: three lists joined cost about a third more)."""
        n = len(args)
        signature = [args[i] if i < n else kwargs[name] for i, name in self._key_slots]
        for a in args:
            if isinstance(a, torch.Tensor):
                signature.append(a.dtype)
        for name, value in kwargs.items():
            signature.append(name)
            signature.append(value.dtype if isinstance(value, torch.Tensor) else value)
        return tuple(signature)

    def run(self, grid, args, kwargs):
        signature = self._signature(args, kwargs)
        settings = self._chosen.get(signature)
        if settings is not None:
            return self.kernel[grid](*args, **kwargs, **settings)
        result = self.autotuner[grid](*args, **kwargs)
        config = getattr(self.autotuner, "best_config", None)
        if config is not None and config.pre_hook is None:
            self._chosen[signature] = config.all_kwargs()
        return result
