"""Host time of each Triton launch through Triton's JIT and through ``Launcher``, measured on CPU.

    python bench/launch_paths.py [--json PATH] [--repeats 2000] [--launches RECORDED.json]

Step 1 (a subprocess under ``TRITON_INTERPRET=1``): the calls of ``bench/host_ops.py`` (the
rasterizer at C = 3 and 160, dense and top-k memory attention, forward and forward+backward) run
once each, and every launch is recorded: its kernel, grid and arguments (tensors by dtype).
Step 2 (this process, no interpreter): Triton's active driver is replaced by a stand-in for an sm_90
GPU whose kernel launcher does nothing; each recorded launch is replayed on fresh CPU tensors of the
recorded dtypes, once to compile (as ``bench/kernel_resources.py`` compiles without a GPU), then
timed ``--repeats`` times through ``kernel[grid](...)`` (the JIT: binding, specialization, cache
key, launch metadata for the empty hook chains) and through ``Launcher(kernel)[grid](...)`` (the
project's path on a GPU). ``jit_us`` and ``launcher_us`` are the sums over a call's launches of the
median host time per launch; the C launcher's own work (argument parsing, ``cuLaunchKernel``) is
absent from both, so the difference is what a GPU host saves, measured on this machine's CPU. Each replayed launch also
checks that the compiled kernel ``Launcher`` holds for its key is the one the JIT picks.
GPU timings of whole calls with and without the direct launches: ``bench/launch_overhead.py``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def record() -> list[dict]:
    """Under the interpreter: every launch of the host_ops cases (one forward+backward each; the
    forward's launches are its first ones). Prints the launches as JSON."""
    sys.path.insert(0, str(HERE))
    import host_ops  # sets TRITON_INTERPRET=1 before any kernel module is imported
    import torch

    from mnemovision.kernels import _launch

    launches: list[dict] = []
    plain_run = _launch.Launcher.run

    def recording_run(self, grid, args, kwargs):
        fn = self.kernel.fn
        meta = {**dict(zip([name for name, _ in self._params] or fn.__code__.co_varnames, args)), **kwargs}
        shape = grid(meta) if callable(grid) else grid

        def kind(value):
            if isinstance(value, torch.Tensor):
                return {"dtype": str(value.dtype).removeprefix("torch.")}
            return {"value": value}

        launches.append({
            "module": fn.__module__, "kernel": fn.__name__, "grid": list(shape), "args": [kind(a) for a in args],
            "kwargs": {name: kind(value) for name, value in kwargs.items()},
        })
        return plain_run(self, grid, args, kwargs)

    _launch.Launcher.run = recording_run
    cases = {
        "rasterize_gaussians C=3": host_ops.raster_case(3),
        "rasterize_gaussians C=160": host_ops.raster_case(160),
        "memory_attention dense": host_ops.attention_case(None, 40),
        "memory_attention top-k 8": host_ops.attention_case(8, 64),
    }
    out = []
    for name, (fwd, loss) in cases.items():
        for part, fn in (("fwd", fwd), ("fwd+bwd", None)):
            launches.clear()
            if fn is not None:
                fn()
            else:
                total, _held = loss()
                total.backward()
            out.append({"case": name, "part": part, "launches": list(launches)})
    return out


def _stand_in_driver():
    """A Triton driver for an sm_90 GPU that compiles for real and launches nothing."""
    import torch
    from triton.backends.compiler import GPUTarget

    class Utils:
        def load_binary(self, name, kernel, shared, device):
            return None, 0, 32, 0, 1024  # module, function, registers, spills, max threads

        def get_device_properties(self, device):
            return {"max_shared_mem": 232448, "multiprocessor_count": 132, "max_num_regs": 65536, "warpSize": 32}

    class NoLaunch:
        def __init__(self, src, metadata):
            pass

        def __call__(self, *args):
            pass

    class Driver:
        utils = Utils()
        launcher_cls = NoLaunch

        def get_current_device(self):
            return 0

        def get_current_stream(self, device):
            return 0

        def get_current_target(self):
            return GPUTarget("cuda", 90, 32)

        def get_active_torch_device(self):
            return torch.device("cpu")

        def is_active(self):
            return True

    return Driver()


def median_us(fn, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def replay(recorded: list[dict], repeats: int) -> list[dict]:
    """Times every recorded launch both ways (see the module docstring); one row per call part."""
    import torch
    from triton.runtime.driver import driver

    from mnemovision.kernels import _launch

    driver.set_active(_stand_in_driver())
    _launch._DIRECT[:] = [True]
    torch.cuda.current_device = lambda: 0
    _launch._raw_stream = lambda device: 0
    launchers: dict = {}

    def build(kind):
        if "dtype" in kind:
            return torch.zeros(64, dtype=getattr(torch, kind["dtype"]))
        return kind["value"]

    rows = []
    for call in recorded:
        jit_us = launcher_us = 0.0
        for launch in call["launches"]:
            kernel = getattr(importlib.import_module(launch["module"]), launch["kernel"])
            launcher = launchers.setdefault(launch["kernel"], _launch.Launcher(kernel))
            args = tuple(build(k) for k in launch["args"])
            kwargs = {name: build(k) for name, k in launch["kwargs"].items()}
            grid = tuple(launch["grid"])
            compiled = kernel[grid](*args, **kwargs)  # compiles (once per specialization)
            launcher[grid](*args, **kwargs)  # records the compiled kernel, or finds it
            # the kernel Launcher launches for this key is the one the JIT picks for these arguments
            assert launcher._seen[launcher.key(0, args, kwargs)][0] is compiled, launch["kernel"]
            jit_us += median_us(lambda: kernel[grid](*args, **kwargs), repeats)
            launcher_us += median_us(lambda: launcher[grid](*args, **kwargs), repeats)
        rows.append({
            "case": call["case"], "part": call["part"], "launches": len(call["launches"]),
            "jit_us": round(jit_us, 1), "launcher_us": round(launcher_us, 1), "saved_us": round(jit_us - launcher_us, 1),
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=None)
    parser.add_argument("--repeats", type=int, default=2000, help="timed launches per recorded launch and path")
    parser.add_argument("--record", action="store_true", help="step 1 only: print the recorded launches as JSON")
    parser.add_argument("--launches", default=None, help="replay launches recorded earlier (--record > PATH), e.g. by another Triton")
    args = parser.parse_args()
    if args.record:
        print(json.dumps(record()))
        return
    if args.launches:
        recorded = json.loads(Path(args.launches).read_text())
    else:
        env = {**os.environ, "TRITON_INTERPRET": "1"}
        done = subprocess.run([sys.executable, __file__, "--record"], env=env, check=True, capture_output=True, text=True)
        recorded = json.loads(done.stdout.strip().splitlines()[-1])
    if os.environ.get("TRITON_INTERPRET"):
        raise SystemExit("run without TRITON_INTERPRET: the replay compiles the kernels")
    sys.path.insert(0, str(HERE))
    from common import print_table, write_json

    rows = replay(recorded, args.repeats)
    print_table(rows, ["case", "part", "launches", "jit_us", "launcher_us", "saved_us"])
    write_json(args.json, {"results": rows})


if __name__ == "__main__":
    main()
