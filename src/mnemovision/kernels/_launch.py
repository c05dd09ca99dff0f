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
- ``Launcher``: a kernel launched straight through its compiled launcher once Triton's JIT has
  resolved the launch's specialization (on a GPU; the JIT's own path under the interpreter).
- ``TunedKernel``: an autotuned kernel that consults Triton's autotuner once per launch signature.
- ``carve``: several tensors as views of one buffer (one allocation or fill, one op per view).
- ``as_dtype``: ``t.to(dtype)`` that skips the call where ``t`` has the dtype already;
  ``contiguous_as``: ``t.to(dtype).contiguous()`` that skips both where they would change nothing.
"""

from __future__ import annotations

import os

import torch
import triton
from triton.runtime.interpreter import InterpretedFunction

__all__ = ["INTERPRETED", "Launcher", "TunedKernel", "as_dtype", "carve", "cdiv", "contiguous_as", "next_pow2"]


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


def as_dtype(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t.to(dtype)``: ``t`` itself where it has that dtype (``to`` returns it then too, after about a
    microsecond of argument parsing and dispatch here, three on the H200's host; the launchers
    convert every output and gradient back to the inputs' dtype at every call)."""
    return t if t.dtype == dtype else t.to(dtype)


def contiguous_as(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t.to(dtype).contiguous()``: ``t`` itself where it is contiguous in that dtype already (two
    calls that return it, at about a microsecond each on a GPU's host, for each input of each launch)."""
    return t if (t.dtype == dtype and t.is_contiguous()) else t.to(dtype).contiguous()


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


# Triton releases whose JIT launches a compiled kernel as ``Launcher`` does (``JITFunction.run``:
# ``kernel.run(grid x3, stream, function, packed_metadata, launch_metadata, enter hook, exit hook,
# *every parameter's value)``), read in 3.6 (torch 2.11's) and 3.8 and taken to hold for 3.7
# between them; others take the JIT's path.
_DIRECT_RELEASES = ((3, 6), (3, 7), (3, 8))


def _direct_supported() -> bool:
    """Whether ``Launcher`` may launch compiled kernels itself in this process: not interpreted, a
    release in ``_DIRECT_RELEASES``, ``MNEMOVISION_TRITON_DIRECT_LAUNCH`` not ``0``, and none of
    Triton's debugging settings that change the JIT's cache key (debug, instrumentation, a stage
    inspection hook). Asked once, at the first launch."""
    if INTERPRETED or os.environ.get("MNEMOVISION_TRITON_DIRECT_LAUNCH", "1") == "0":
        return False
    release = tuple(int(part) for part in triton.__version__.split(".")[:2])
    knobs = getattr(triton, "knobs", None)
    if release not in _DIRECT_RELEASES or knobs is None:
        return False
    runtime, compilation = knobs.runtime, knobs.compilation
    return not (runtime.debug or compilation.instrumentation_mode or runtime.add_stages_inspection_hook is not None)


_DIRECT: list = []  # [bool] once known
_Tensor = torch.Tensor  # a module global: looked up faster than torch's attribute at every argument


_CURRENT_RAW_STREAM = getattr(torch._C, "_cuda_getCurrentRawStream", None)  # absent from CPU-only builds


def _raw_stream(device: int) -> int:
    """The current CUDA stream's handle on ``device`` (what Triton's driver passes a launch)."""
    if _CURRENT_RAW_STREAM is not None:
        return _CURRENT_RAW_STREAM(device)
    return torch.cuda.current_stream(device).cuda_stream


def _idle(hook) -> bool:
    """A launch hook that calls nothing: None, or an empty chain (Triton 3.5+ keeps empty ones)."""
    return hook is None or getattr(hook, "calls", None) == []


class Launcher:
    """A ``@triton.jit`` kernel (``Launcher(kernel)[grid](*args, **kwargs)``, as the kernel itself
    is called) that skips the JIT's per-launch work once it has seen a launch's specialization.

    Triton's ``JITFunction.run`` binds every argument, derives the specialization (each tensor's
    dtype and 16-byte alignment, each integer's width, whether it is 1 or a multiple of 16), builds
    a string cache key from it, looks up the compiled kernel, checks the kernel's globals and
    prepares launch metadata for the launch hooks: about 9 us of the 16 us a launch cost the H200's
    host (``bench/launch_overhead.py``). Here a launch builds a tuple key at least as fine as the
    JIT's (``key``: the current device, per positional argument its dtype and alignment, integer
    class or, for a constexpr parameter, its value; the keyword arguments as given) and, on a key
    seen before, calls the compiled kernel's launcher with what the JIT would pass it. A new key
    launches through the JIT (which compiles or finds the kernel) and records the kernel it returns.
    The launch hooks are passed when something is registered on them, with their metadata.
    Not done here: the JIT's check that the kernel's global constants have not changed since it
    compiled (this project's kernels read module constants that never change).

    Under the interpreter, in Triton releases not known to launch the same way, or with
    ``MNEMOVISION_TRITON_DIRECT_LAUNCH=0`` every launch goes through the JIT.
    """

    def __init__(self, kernel):
        self.kernel = kernel
        params = getattr(kernel, "params", ())  # an interpreted kernel has none (and launches through it)
        self._constexpr = tuple(p.is_constexpr for p in params)
        self._lead = self._constexpr.index(True) if True in self._constexpr else len(params)  # leading runtime parameters
        self._params = tuple((p.name, p.default) for p in params)
        self._seen: dict = {}

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            return self.run(grid, args, kwargs)

        return launch

    def key(self, device: int, args: tuple, kwargs: dict) -> tuple:
        """The launch's cache key: equal keys imply equal specializations in Triton's JIT. Runs at
        every launch, so written for speed: one loop over the leading non-constexpr parameters
        without per-parameter flags, the keyword arguments as given (a tensor among them keys by
        identity: ``run`` launches such calls through the JIT and records nothing)."""
        key = [device]
        append = key.append
        lead = self._lead
        for value in args[:lead] if len(args) > lead else args:
            if isinstance(value, _Tensor):
                append((value.dtype, value.data_ptr() & 15))
            elif value.__class__ is int:  # not bool: True == 1
                append("1" if value == 1 else (value & 15 == 0, -(2**31) <= value < 2**31, value >= 2**63))
            elif value.__class__ is float:
                append(float)
            else:
                append(value)  # None, bool: their value
        if len(args) > lead:
            for value, constexpr in zip(args[lead:], self._constexpr[lead:]):
                append(("c", value) if constexpr else self.key(device, (value,), {})[1:])
        append(tuple(kwargs.items()))
        return tuple(key)

    def arguments(self, args: tuple, kwargs: dict) -> tuple:
        """Every parameter's value in the kernel's order, defaults filled in: what the JIT passes
        the compiled kernel's launcher (constexprs included; the launcher skips them)."""
        tail = self._params[len(args):]
        return (*args, *[kwargs[name] if name in kwargs else default for name, default in tail])

    def run(self, grid, args: tuple, kwargs: dict):
        if not _DIRECT:
            _DIRECT.append(_direct_supported())
        if not _DIRECT[0] or self.kernel.pre_run_hooks:
            return self.kernel[grid](*args, **kwargs)
        device = torch.cuda.current_device()
        key = self.key(device, args, kwargs)
        try:
            seen = self._seen.get(key)
        except TypeError:  # an unhashable argument: the JIT decides
            return self.kernel[grid](*args, **kwargs)
        if seen is None:
            compiled = self.kernel[grid](*args, **kwargs)
            if compiled is not None and not any(isinstance(value, torch.Tensor) for value in kwargs.values()):
                launch = compiled.run  # a property: loads the kernel on first use (the JIT has)
                self._seen[key] = (compiled, launch, compiled.function, compiled.packed_metadata)
            return compiled
        compiled, launch, function, packed = seen
        values = self.arguments(args, kwargs)
        if callable(grid):
            grid = grid({name: value for (name, _), value in zip(self._params, values)})
        g1 = grid[1] if len(grid) > 1 else 1
        g2 = grid[2] if len(grid) > 2 else 1
        stream = _raw_stream(device)
        runtime = triton.knobs.runtime
        enter, leave = runtime.launch_enter_hook, runtime.launch_exit_hook
        if _idle(enter) and _idle(leave):
            metadata = enter = leave = None
        else:
            metadata = compiled.launch_metadata(grid, stream, *values)
        launch(grid[0], g1, g2, stream, function, packed, metadata, enter, leave, *values)
        return compiled


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
        self.launcher = Launcher(autotuner.fn)
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
            return self.launcher[grid](*args, **kwargs, **settings)
        result = self.autotuner[grid](*args, **kwargs)
        config = getattr(self.autotuner, "best_config", None)
        if config is not None and config.pre_hook is None:
            self._chosen[signature] = config.all_kwargs()
        return result
