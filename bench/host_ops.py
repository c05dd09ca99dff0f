"""Host work per call of the Triton paths, counted on CPU: PyTorch ops and Triton launches.

    python bench/host_ops.py [--json PATH] [--ops]

On a GPU each PyTorch op costs the host a few microseconds of dispatch and each Triton launch more
(argument binding, cache lookup, the driver call); where the GPU work per call is small (the
rasterizer at C = 3, the top-k readout) that host time is what a caller waits for. The counts do not
depend on the device, so they are taken here on CPU under the Triton interpreter (set before
Triton is imported), at small shapes: ``aten_ops`` is the ATen ops the dispatcher saw outside the
kernels (views included; the interpreter's own work inside a launch is not counted), ``launches`` the
Triton kernel launches, for a forward and a forward+backward of each case. ``--ops`` lists the ops.
``autograd_nodes`` counts the nodes a forward+backward's backward runs. ``host_us`` is the host
time of one call outside the kernels (the launches replay what a recorded call's launches wrote;
see ``Replay``): our wrappers' Python, the ATen ops on CPU at these tiny sizes, the launch-grid
arithmetic and autograd, but not Triton's own launcher, which needs a GPU. It ranks host-side
changes on this machine; GPU timings of the same calls: ``bench/launch_overhead.py``.
"""

from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"  # read when @triton.jit decorates a kernel: before any import of them

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes  # noqa: E402
from triton.runtime.interpreter import InterpretedFunction  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table, write_json  # noqa: E402

from mnemovision.kernels import memory_attention, rasterize_gaussians  # noqa: E402


class OpCounter(TorchDispatchMode):
    """Counts ATen ops by name, and Triton launches (through the interpreter's ``run``)."""

    def __init__(self):
        super().__init__()
        self.ops = Counter()
        self.launches = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket.__name__)] += 1
        return func(*args, **(kwargs or {}))


class Replay:
    """Records what each launch of one call wrote, then stands in for the launches of later calls
    of the same function, writing the recorded values into their fresh buffers: the host code
    downstream (sizes read back, sorts, autograd) runs as it does for real, and the loop stays hot
    (running the interpreter between calls would leave the host's caches cold)."""

    def __init__(self):
        self.written: list[list] = []
        self.recording = True
        self.step = 0
        self.launch_s = 0.0

    def launch(self, fn, args, kwargs):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if self.recording:
            result = fn(*args, **kwargs)
            # every tensor argument's state after the launch: the outputs, and the inputs unchanged
            # (telling them apart by comparison fails where a fresh buffer reuses memory that already
            # held the same values)
            self.written.append([t.clone() for t in tensors])
            return result
        start = time.perf_counter()
        for t, value in zip(tensors, self.written[self.step]):
            t.data.copy_(value)  # through .data: no autograd version bump on saved tensors
        self.step += 1
        self.launch_s += time.perf_counter() - start
        return None


_ACTIVE: list = []
_original_run = InterpretedFunction.run


def _intercepted_run(self, *args, **kwargs):
    active = _ACTIVE[-1] if _ACTIVE else None
    if isinstance(active, Replay):
        return active.launch(lambda *a, **k: _original_run(self, *a, **k), args, kwargs)
    if active is not None:
        active.launches[self.fn.__name__] += 1
    with _disable_current_modes():
        return _original_run(self, *args, **kwargs)


InterpretedFunction.run = _intercepted_run


def _within(active, fn):
    _ACTIVE.append(active)
    try:
        fn()
    finally:
        _ACTIVE.pop()


def count(fn) -> OpCounter:
    counter = OpCounter()
    with counter:
        _within(counter, fn)
    return counter


def host_us(fn, repeats: int) -> float:
    """Median over ``repeats`` calls of the host time outside the launches, in microseconds: one
    call records what its launches write, the timed calls replay it (the copies are not counted)."""
    replay = Replay()
    _within(replay, fn)
    replay.recording = False
    samples = []
    for _ in range(repeats + 5):  # the first few warm the caches
        replay.step, replay.launch_s = 0, 0.0
        start = time.perf_counter()
        _within(replay, fn)
        samples.append((time.perf_counter() - start - replay.launch_s) * 1e6)
    return statistics.median(samples[5:])


def graph_nodes(loss: torch.Tensor) -> int:
    """The autograd nodes behind ``loss``, which its backward runs (gradient accumulation into the
    leaves included): each costs the engine host time on a GPU beside its ops."""
    seen, stack = set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and node not in seen:
            seen.add(node)
            stack.extend(fn for fn, _ in node.next_functions)
    return len(seen)


def raster_case(c: int):
    g = torch.Generator().manual_seed(0)
    n = 60
    means = torch.randn(n, 3, generator=g) * 0.4 + torch.tensor([0.0, 0.0, 3.0])
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.1 + 0.05
    opac = torch.rand(n, generator=g) * 0.8 + 0.1
    colors = torch.rand(n, c, generator=g)
    view = torch.eye(4)[None]
    ks = torch.tensor([[[20.0, 0.0, 16.0], [0.0, 20.0, 16.0], [0.0, 0.0, 1.0]]])
    leaves = [t.requires_grad_(True) for t in (means, quats, scales, opac, colors)]

    def fwd():
        with torch.no_grad():
            rasterize_gaussians(*leaves, view, ks, 32, 32, backend="triton")

    def loss():  # (loss, info): info held until after the backward, as training code holds it
        render, alpha, info = rasterize_gaussians(*leaves, view, ks, 32, 32, backend="triton")
        return render.sum() + alpha.sum(), info

    return fwd, loss


def attention_case(top_k, m: int):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, n, 16, generator=g).requires_grad_(True) for n in (8, m, m))

    def fwd():
        with torch.no_grad():
            memory_attention(q, k, v, top_k=top_k, backend="triton")

    def loss():
        return memory_attention(q, k, v, top_k=top_k, backend="triton").sum(), None

    return fwd, loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=None)
    parser.add_argument("--ops", action="store_true", help="list the ops of each call")
    parser.add_argument("--repeats", type=int, default=200, help="calls per host-time median")
    args = parser.parse_args()
    cases = {
        "rasterize_gaussians C=3": raster_case(3),
        "rasterize_gaussians C=160": raster_case(160),
        "memory_attention dense": attention_case(None, 40),
        "memory_attention top-k 8": attention_case(8, 64),
    }
    rows = []
    for name, (fwd, loss) in cases.items():

        def fwd_bwd(loss=loss):
            total, _held = loss()
            total.backward()

        fwd_bwd()  # first calls compile nothing here, but keep the counted calls free of one-off work
        nodes = graph_nodes(loss()[0])
        for part, fn in (("fwd", fwd), ("fwd+bwd", fwd_bwd)):
            counter = count(fn)
            rows.append({
                "case": name, "part": part, "aten_ops": sum(counter.ops.values()), "launches": sum(counter.launches.values()),
                "autograd_nodes": nodes if part == "fwd+bwd" else 0, "host_us": round(host_us(fn, args.repeats), 1),
            })
            if args.ops:
                print(f"== {name} {part}: {dict(counter.ops)}\n   launches: {dict(counter.launches)}")
    print_table(rows, ["case", "part", "aten_ops", "launches", "autograd_nodes", "host_us"])
    write_json(args.json, {"results": rows})


if __name__ == "__main__":
    main()
