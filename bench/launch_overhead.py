"""Host-side cost of one call on a GPU: launches, Triton's Python launcher, our wrappers, autograd.

    python bench/launch_overhead.py [--calls 2000] [--json PATH] [--cprofile] [--gsplat]

At tiny shapes (GPU work of a few microseconds) the time per call is what the host spends issuing
it. Each row gives ``issue_us`` (calls back to back, one synchronisation at the end: the issue rate)
and ``sync_us`` (median of call + synchronise: the latency a caller waiting on the result sees),
side by side for a PyTorch op, a trivial Triton kernel (plain, through ``triton.autotune`` and through
``mnemovision.kernels._launch.TunedKernel``),
``memory_attention`` (dense and top-k, forward and forward+backward) beside SDPA (the
forward+backward rows again with autograd's backward on the calling thread instead of its device
thread), and ``rasterize_gaussians`` beside gsplat's ``rasterization`` (``--gsplat``); some rows again
with every ``Launcher`` launch through Triton's JIT (``through_the_jit``: what the direct launches
save) and with Triton's (empty) launch hooks set to None (``launch_hooks_off``). ``--cprofile``
first prints where the host time of a top-k, a dense and a rasterizer forward+backward goes, by
Python function (backward on the calling thread, so that cProfile sees it). Needs CUDA.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table, write_json  # noqa: E402

from mnemovision.kernels import memory_attention, rasterize_gaussians  # noqa: E402
from mnemovision.kernels import _launch  # noqa: E402
from mnemovision.kernels._launch import Launcher, TunedKernel, cdiv  # noqa: E402


@triton.jit
def _touch_kernel(X, N, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(X + offs, tl.load(X + offs, mask=offs < N, other=0.0) + 1.0, mask=offs < N)


_touch_tuned = triton.autotune([triton.Config({"BLOCK": 64}, num_warps=1), triton.Config({"BLOCK": 128}, num_warps=2)], key=["N"])(_touch_kernel)
_touch_launcher = Launcher(_touch_kernel)  # the project's launches: straight to the compiled kernel once seen
# the same two candidates behind the project's wrapper, which asks the autotuner once per signature
_touch_wrapped = TunedKernel(triton.autotune([triton.Config({"BLOCK": 64}, num_warps=1), triton.Config({"BLOCK": 128}, num_warps=2)], key=["N"])(_touch_kernel))


def timings(fn, calls: int) -> dict:
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    torch.cuda.synchronize()
    issue = (time.perf_counter() - start) / calls * 1e6
    lat = []
    for _ in range(min(calls, 300)):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        lat.append((time.perf_counter() - t0) * 1e6)
    return {"issue_us": issue, "sync_us": statistics.median(lat)}


def direct_launch_case(x) -> dict:
    """The trivial kernel launched through its cached ``CompiledKernel`` (``compiled[grid](*args)``,
    every parameter positional, constexprs included), skipping the JIT's argument binding and cache
    lookup: what a launch cache in the library would save. Empty when this Triton lacks the API."""
    try:
        compiled = _touch_kernel[(2,)](x, 100, BLOCK=64)
        runner = compiled[(2, 1, 1)]
        stream = torch.cuda.current_stream().cuda_stream
        runner(x, 100, 64, stream=stream)
        torch.cuda.synchronize()
    except Exception as error:  # an API difference between Triton versions: report it, time the rest
        print(f"direct CompiledKernel launch unavailable: {type(error).__name__}: {error}")
        return {}
    return {"triton compiled kernel, direct launch": lambda: runner(x, 100, 64, stream=stream)}


def attention_cases():
    g = torch.Generator().manual_seed(0)

    def make(m):
        return [torch.randn(1, 1, n, 64, generator=g).cuda().half().requires_grad_(True) for n in (16, m, m)]

    cases = {}
    for name, top_k, m in (("dense", None, 64), ("topk8", 8, 256)):
        q, k, v = make(m)

        def fwd(q=q, k=k, v=v, top_k=top_k):
            with torch.no_grad():
                memory_attention(q, k, v, top_k=top_k, backend="triton")

        def fwd_bwd(q=q, k=k, v=v, top_k=top_k):
            memory_attention(q, k, v, top_k=top_k, backend="triton").sum().backward()

        cases[f"memory_attention {name} fwd"] = fwd
        cases[f"memory_attention {name} fwd+bwd"] = fwd_bwd
    q, k, v = make(64)

    def sdpa_fwd():
        with torch.no_grad():
            F.scaled_dot_product_attention(q, k, v)

    cases["sdpa fwd"] = sdpa_fwd
    cases["sdpa fwd+bwd"] = lambda: F.scaled_dot_product_attention(q, k, v).sum().backward()
    return cases


def raster_inputs(n: int = 200):
    g = torch.Generator().manual_seed(0)
    means = torch.randn(n, 3, generator=g) * 0.5 + torch.tensor([0.0, 0.0, 3.0])
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.1 + 0.02
    opac = torch.rand(n, generator=g) * 0.8 + 0.1
    colors = torch.rand(n, 3, generator=g)
    view = torch.eye(4)[None]
    ks = torch.tensor([[[60.0, 0.0, 32.0], [0.0, 60.0, 32.0], [0.0, 0.0, 1.0]]])
    return [t.cuda().requires_grad_(i < 5) for i, t in enumerate((means, quats, scales, opac, colors, view, ks))]


def raster_cases(with_gsplat: bool):
    inputs = raster_inputs()
    cases = {}

    def ours(grad: bool):
        if not grad:
            with torch.no_grad():
                rasterize_gaussians(*inputs, 64, 64, backend="triton")
            return
        r, a, _ = rasterize_gaussians(*inputs, 64, 64, backend="triton")
        (r.sum() + a.sum()).backward()

    cases["rasterize_gaussians fwd"] = lambda: ours(False)
    cases["rasterize_gaussians fwd+bwd"] = lambda: ours(True)
    if not with_gsplat:
        return cases
    from gsplat import rasterization

    def theirs(grad: bool):
        means, quats, scales, opac, colors, view, ks = inputs
        if not grad:
            with torch.no_grad():
                rasterization(means, quats, scales, opac, colors, view, ks, 64, 64)
            return
        r, a, _ = rasterization(means, quats, scales, opac, colors, view, ks, 64, 64)
        (r.sum() + a.sum()).backward()

    cases["gsplat rasterization fwd"] = lambda: theirs(False)
    cases["gsplat rasterization fwd+bwd"] = lambda: theirs(True)
    return cases


def print_host_profile(name: str, fn, calls: int = 200) -> None:
    """Where the host time of ``fn`` goes, by Python function (own time, top 20). Autograd runs a
    CUDA backward on its device thread, which cProfile does not see: here the engine runs it on the
    calling thread instead, so the backward's Python shows up."""
    with torch.autograd.set_multithreading_enabled(False):
        for _ in range(5):
            fn()
        torch.cuda.synchronize()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
        prof.disable()
    print(f"== host profile: {name}, {calls} calls (backward on the calling thread)")
    pstats.Stats(prof).sort_stats("tottime").print_stats(20)


def on_calling_thread(fn):
    """``fn`` with autograd's backward on the calling thread (no hand-over to the device thread)."""

    def call():
        with torch.autograd.set_multithreading_enabled(False):
            fn()

    return call


class launch_hooks_off:
    """Triton's launch hooks set to None while inside (Triton 3.5+ keeps an empty ``HookChain`` in
    ``triton.knobs.runtime.launch_enter_hook`` / ``launch_exit_hook``: each launch builds a launch
    metadata dict and its launcher calls both chains; None skips all three). A no-op where this
    Triton has no such knobs. Only for measuring what they cost: other code may register hooks."""

    def __enter__(self):
        self.runtime = getattr(getattr(triton, "knobs", None), "runtime", None)
        self.saved = None
        if self.runtime is not None and hasattr(self.runtime, "launch_enter_hook"):
            self.saved = (self.runtime.launch_enter_hook, self.runtime.launch_exit_hook)
            self.runtime.launch_enter_hook = self.runtime.launch_exit_hook = None
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            self.runtime.launch_enter_hook, self.runtime.launch_exit_hook = self.saved
        return False


class through_the_jit:
    """Every ``Launcher`` launch through Triton's JIT while inside (as with
    ``MNEMOVISION_TRITON_DIRECT_LAUNCH=0``, which a process reads once): the rows' cost before the
    direct launches, measured in the same run."""

    def __enter__(self):
        self.saved = list(_launch._DIRECT)
        _launch._DIRECT[:] = [False]
        return self

    def __exit__(self, *exc):
        _launch._DIRECT[:] = self.saved
        return False


# rows timed again with every launch through the JIT
JIT_ROWS = ("memory_attention dense fwd", "memory_attention topk8 fwd", "memory_attention topk8 fwd+bwd", "rasterize_gaussians fwd", "rasterize_gaussians fwd+bwd")
# rows timed again with Triton's launch hooks off
HOOKS_OFF_ROWS = ("triton kernel (one launch)", "memory_attention dense fwd", "memory_attention topk8 fwd", "rasterize_gaussians fwd", "rasterize_gaussians fwd+bwd")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--json", default=None)
    parser.add_argument("--cprofile", action="store_true", help="first print host profiles of top-k, dense and rasterizer forward+backward")
    parser.add_argument("--gsplat", action="store_true", help="also time gsplat's rasterization (its CUDA extension must be built)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("launch_overhead.py measures host cost around GPU launches: it needs CUDA")
    x = torch.zeros(100, device="cuda")
    cases = {
        "torch add_ (one launch)": lambda: x.add_(1.0),
        "triton kernel (one launch)": lambda: _touch_kernel[(2,)](x, 100, BLOCK=64),
        "triton kernel through Launcher": lambda: _touch_launcher[(2,)](x, 100, BLOCK=64),
        "triton autotuned kernel (one launch)": lambda: _touch_tuned[lambda meta: (cdiv(100, meta["BLOCK"]),)](x, 100),
        "TunedKernel-wrapped autotuned kernel": lambda: _touch_wrapped[lambda meta: (cdiv(100, meta["BLOCK"]),)](x, 100),
        **direct_launch_case(x),
        **attention_cases(),
        **raster_cases(args.gsplat),
    }
    if args.cprofile:  # first: on a fresh machine the rows below (compiling every kernel) can outlast a step's time limit
        for name in ("memory_attention topk8 fwd+bwd", "memory_attention dense fwd+bwd", "rasterize_gaussians fwd+bwd"):
            print_host_profile(name, cases[name])
    # the hand-over to autograd's device thread and back, per backward: the same calls without it
    for name in ("memory_attention dense fwd+bwd", "memory_attention topk8 fwd+bwd", "sdpa fwd+bwd"):
        cases[f"{name}, backward on the calling thread"] = on_calling_thread(cases[name])
    rows = []
    for name, fn in cases.items():
        row = {"case": name, **timings(fn, args.calls), "device": torch.cuda.get_device_name()}
        rows.append(row)
        print(f"{name:40s} issue {row['issue_us']:8.1f} us  sync {row['sync_us']:8.1f} us", flush=True)
    for name in JIT_ROWS:
        with through_the_jit():
            row = {"case": f"{name}, launches through the JIT", **timings(cases[name], args.calls), "device": torch.cuda.get_device_name()}
        rows.append(row)
        print(f"{row['case']:40s} issue {row['issue_us']:8.1f} us  sync {row['sync_us']:8.1f} us", flush=True)
    for name in HOOKS_OFF_ROWS:
        with launch_hooks_off() as hooks:
            if hooks.saved is None:
                break
            row = {"case": f"{name}, launch hooks None", **timings(cases[name], args.calls), "device": torch.cuda.get_device_name()}
        rows.append(row)
        print(f"{row['case']:40s} issue {row['issue_us']:8.1f} us  sync {row['sync_us']:8.1f} us", flush=True)
    print()
    print_table(rows, ["case", "issue_us", "sync_us", "device"])
    write_json(args.json, {"results": rows})


if __name__ == "__main__":
    main()
