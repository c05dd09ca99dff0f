"""Where the time of one garden view goes: the kernels (torch.profiler) of a rasterizer backend, with
the launch count and the wall time per call, forward or forward+backward, at C = 3 and C = 160.

    python bench/raster_profile.py [--device cuda] [--backends triton,gsplat] [--channels 3,160] [--backward] [--small-c both] [--wide both] [--order both]

Prints one kernel table per (backend, channels): the Triton path's ``_project_*``, ``_bin_kernel`` and
``_composite_*_kernel`` beside PyTorch's sort and small elementwise kernels; for the Triton path on a
GPU also the compositor autotuner's time per candidate and choice, and each compiled compositor's
registers and spills. ``--small-c both`` profiles the Triton path at C <= 4 twice: with the batched
kernels' small-C path (the default) and with the one-Gaussian-at-a-time kernels (``triton_seq``);
``--wide both`` profiles C > 4 with the two-pass forward and three-pass backward (``triton_wide``, the
default) and with the batched kernels. ``--order both`` profiles the batched kernels with their tiles
started longest list first (``LONGEST_FIRST``, the default) and in index order.
Not a JSON benchmark: ``bench/raster.py`` is the record. On a CPU it profiles the CPU ops instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_kernel_profile  # noqa: E402
from raster import load_scene, make_runner  # noqa: E402


def print_triton_choices() -> None:
    """The compositor autotuner's timings per candidate and, per compiled kernel, registers and spills
    (Triton internals, read defensively: versions differ in where they keep them)."""
    from mnemovision.kernels.gaussians import triton_impl

    from mnemovision.kernels.gaussians import triton_seq

    from mnemovision.kernels.gaussians import triton_wide

    tuners = (
        ("forward", triton_impl._fwd_tuned), ("backward", triton_impl._bwd_tuned), ("sequential forward", triton_impl._seq_fwd_tuned),
        ("sequential backward", triton_impl._seq_bwd_tuned), ("wide compose", triton_wide._compose_tuned), ("wide dots", triton_wide._dots_tuned),
        ("wide features", triton_wide._feature_tuned),
    )
    for name, tuner in tuners:
        for config, timing in (getattr(tuner, "configs_timings", None) or {}).items():
            print(f"   autotune {name}: {config} -> {timing} ms")
        print(f"   autotune {name} choice: {getattr(tuner, 'best_config', None)}")
    kernels = (triton_impl._composite_fwd_kernel, triton_impl._composite_bwd_kernel, triton_seq._seq_fwd_kernel, triton_seq._seq_bwd_kernel,
               triton_wide._compose_kernel, triton_wide._dots_kernel, triton_wide._feature_grad_kernel)
    for jit in kernels:
        for entry in getattr(jit, "device_caches", {}).values():
            cache = entry[0] if isinstance(entry, tuple) else entry
            for kernel in cache.values() if isinstance(cache, dict) else ():
                meta = getattr(kernel, "metadata", None)
                print(f"   compiled {getattr(kernel, 'name', '?')}: warps {getattr(meta, 'num_warps', '?')}, "
                      f"registers {getattr(kernel, 'n_regs', '?')}, spills {getattr(kernel, 'n_spills', '?')}, shared {getattr(meta, 'shared', '?')} B")


def profile_backend(backend: str, channels: int, device: str, backward: bool, calls: int, label: str = "") -> None:
    tensors, width, height = load_scene("garden", channels, device)
    run, leaves = make_runner(backend, tensors, width, height)
    for t in leaves:
        t.requires_grad_(backward)

    def call():
        if backward:
            render, alpha = run()
            (render.sum() + alpha.sum()).backward()
            for t in leaves:
                t.grad = None
        else:
            with torch.no_grad():
                run()

    print_kernel_profile(f"{backend}{label} garden {width}x{height} C={channels} {'fwd+bwd' if backward else 'fwd'}", call, device, calls)
    if backend == "triton" and device == "cuda":
        print_triton_choices()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backends", default=None, help="comma-separated (default: triton and gsplat on CUDA, torch on a CPU)")
    parser.add_argument("--channels", default="3,160")
    parser.add_argument("--backward", action="store_true", help="profile forward+backward")
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--small-c", default="batched", choices=["sequential", "batched", "both"], help="Triton kernels at C <= 4")
    parser.add_argument("--wide", default="split", choices=["split", "batched", "both"], help="Triton kernels at C > 4")
    parser.add_argument("--order", default="longest", choices=["longest", "index", "both"], help="the batched kernels' tile order")
    args = parser.parse_args()
    backends = args.backends.split(",") if args.backends else (["triton", "gsplat"] if args.device == "cuda" else ["torch"])
    choices = {"sequential": [True], "split": [True], "batched": [False], "both": [True, False]}
    orders = {"longest": [True], "index": [False], "both": [True, False]}
    for backend in backends:
        for channels in (int(c) for c in args.channels.split(",")):
            if backend != "triton":
                profile_backend(backend, channels, args.device, args.backward, args.calls)
                continue
            from mnemovision.kernels.gaussians import triton_impl

            small = channels <= 4
            switch = "SEQUENTIAL_SMALL_C" if small else "SPLIT_WIDE"
            default = getattr(triton_impl, switch)
            for new_path in choices[args.small_c if small else args.wide]:
                setattr(triton_impl, switch, new_path)
                label = "" if new_path == default else (" (sequential small-C kernels)" if new_path else " (batched small-C kernels)") if small else " (batched kernels)"
                for longest in orders[args.order] if not (small and new_path) else [True]:  # the sequential kernels take tiles in index order anyway
                    triton_impl.LONGEST_FIRST = longest
                    order = "" if longest else " (tiles in index order)"
                    profile_backend(backend, channels, args.device, args.backward, args.calls, label + order)
            setattr(triton_impl, switch, default)
            triton_impl.LONGEST_FIRST = True


if __name__ == "__main__":
    main()
