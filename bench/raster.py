"""Rasterizer benchmark on the real Mip-NeRF 360 garden SfM points (gsplat's test asset).

    python bench/raster.py [--quick] [--device cpu|cuda] --json PATH

Scene: 138,766 SfM points of ../shared/data/splatting/garden (or $MNEMOVISION_DATA), 3 real cameras
at 648x420; scales from the mean distance to the 3 nearest neighbours (in the full cloud, also for
the reduced scene), opacity 0.8, identity
rotations, colours from the points (C = 3) or random features (C = 160). Backends: ``torch`` and
``triton`` (mnemovision; triton only on CUDA), ``gsplat`` (its CUDA rasterizer, when importable on a
GPU) and ``dense`` (the brute-force oracle, on a reduced scene ``garden_small`` that the torch
backend also runs, so the two compare directly). Forward and forward+backward of one view; on CPU
each row runs in its own subprocess so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_mb, print_table, time_ms, write_json  # noqa: E402

from mnemovision.kernels.gaussians import rasterize_gaussians, ref  # noqa: E402
from mnemovision.vision.data import shared_data_path  # noqa: E402

SMALL_GAUSSIANS, SMALL_DOWNSCALE = 1500, 4


def load_scene(name: str, channels: int, device: str, views: int = 1):
    """((means, quats, scales, opacities, colors, viewmats, Ks), width, height) of the scene with the
    garden file's first ``views`` cameras (the benchmark uses the first)."""
    path = shared_data_path("splatting", "garden", "test_garden.npz", start=Path(__file__).resolve().parent)
    if path is None:
        raise SystemExit("garden data not found: place ../shared/data/splatting/garden/test_garden.npz or set MNEMOVISION_DATA")
    data = np.load(path)
    pts = data["means3d"].astype(np.float64)
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(pts).query(pts, k=4)
    scale = np.clip(dist[:, 1:].mean(1), 1e-6, None)
    rng = np.random.default_rng(0)
    n = len(pts)
    idx = np.arange(n)
    width, height = int(data["width"]), int(data["height"])
    Ks = torch.from_numpy(data["Ks"][:views]).float()
    if name == "garden_small":
        idx = np.sort(rng.choice(n, SMALL_GAUSSIANS, replace=False))
        width, height = width // SMALL_DOWNSCALE, height // SMALL_DOWNSCALE
        Ks = Ks.clone()
        Ks[:, :2] /= SMALL_DOWNSCALE
    means = torch.from_numpy(pts[idx]).float()
    scales = torch.from_numpy(np.repeat(scale[idx, None], 3, 1)).float()
    quats = torch.zeros(len(idx), 4)
    quats[:, 0] = 1.0
    opac = torch.full((len(idx),), 0.8)
    colors = torch.from_numpy(data["colors"][idx]).float() / 255.0 if channels == 3 else torch.from_numpy(rng.random((len(idx), channels))).float()
    viewmats = torch.from_numpy(data["viewmats"][:views]).float()
    tensors = [t.to(device) for t in (means, quats, scales, opac, colors, viewmats, Ks)]
    return tensors, width, height


def make_runner(backend: str, tensors, width: int, height: int):
    means, quats, scales, opac, colors, viewmats, Ks = tensors
    leaves = [means, quats, scales, opac, colors]
    if backend in ("torch", "triton"):
        def run():
            return rasterize_gaussians(means, quats, scales, opac, colors, viewmats, Ks, width, height, backend=backend)[:2]
    elif backend == "dense":
        def run():
            covars = ref.quat_scale_to_covar(quats, scales)
            m2, con, dep, rad, comp = ref.project_gaussians(means, covars, viewmats, Ks, width, height)
            return ref.composite_dense(m2, con, opac[None] * comp, colors[None], dep, None, rad, width, height)
    elif backend == "gsplat":
        import gsplat

        def run():
            r, a, _ = gsplat.rasterization(means, quats, scales, opac, colors, viewmats, Ks, width, height, packed=False)
            return r, a
    else:
        raise ValueError(backend)
    return run, leaves


def measure(backend: str, scene: str, channels: int, device: str, repeats: int, warmup: int) -> dict:
    tensors, width, height = load_scene(scene, channels, device)
    run, leaves = make_runner(backend, tensors, width, height)
    for t in leaves:
        t.requires_grad_(True)

    def forward():
        with torch.no_grad():
            return run()

    def forward_backward():
        render, alpha = run()
        (render.sum() + alpha.sum()).backward()
        for t in leaves:
            t.grad = None

    return {
        "backend": backend,
        "scene": scene,
        "width": width,
        "height": height,
        "n_gaussians": int(tensors[0].shape[0]),
        "channels": channels,
        "fwd_ms": time_ms(forward, device, warmup, repeats),
        "fwd_bwd_ms": time_ms(forward_backward, device, warmup, repeats),
        "peak_mem_mb": peak_mb(forward_backward, device) if repeats > 1 or device == "cuda" else peak_mb_once(forward_backward, device),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
    }


def peak_mb_once(fn, device):
    """Peak memory of a single call (quick mode: no extra warm-up call, the timing calls already ran)."""
    from common import _release_free_heap, max_rss_mb, reset_peak_rss, rss_mb

    _release_free_heap()
    reset_peak_rss()
    base = rss_mb()
    fn()
    return max(0.0, max_rss_mb() - base)


def plan(device: str, only: list[str] | None = None, channels: tuple[int, ...] = (3, 160)) -> list[tuple[str, str, int]]:
    """Rows to measure: every backend available here, or those of ``only`` among them, at each of
    ``channels`` on the full garden view."""
    backends = ["torch"]
    if device == "cuda":
        backends.append("triton")
        if importlib.util.find_spec("gsplat") is not None:
            backends.append("gsplat")
    jobs = [(b, "garden", c) for c in channels for b in backends]
    jobs += [("dense", "garden_small", 3), ("torch", "garden_small", 3)]
    return [job for job in jobs if only is None or job[0] in only]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one timed call per row (under a minute on 2 CPU cores)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default=None)
    parser.add_argument("--backends", default=None, help="comma-separated subset of torch,triton,gsplat,dense (default: all available)")
    parser.add_argument("--channels", default="3,160", help="channel counts of the full-view rows (default 3,160)")
    parser.add_argument("--one", nargs=3, metavar=("BACKEND", "SCENE", "CHANNELS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    only = None if args.backends is None else args.backends.split(",")
    if only is not None and not set(only) <= {"torch", "triton", "gsplat", "dense"}:
        parser.error(f"--backends takes torch, triton, gsplat, dense; got {args.backends}")
    repeats, warmup = (1, 0) if args.quick else (3, 1)
    if args.device == "cuda":  # medians of many calls: a call's wall time varies with the host's (2026-11-29: +-30%)
        repeats, warmup = (5, 2) if args.quick else (50, 5)
    if args.one:
        backend, scene, channels = args.one
        print(json.dumps(measure(backend, scene, int(channels), args.device, repeats, warmup)))
        return
    results = []
    for backend, scene, channels in plan(args.device, only, tuple(int(c) for c in args.channels.split(","))):
        if args.device == "cpu":
            cmd = [sys.executable, __file__, "--device", "cpu", "--one", backend, scene, str(channels)] + (["--quick"] if args.quick else [])
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(out.stderr[-3000:])
            row = json.loads(out.stdout.strip().splitlines()[-1])
        else:
            row = measure(backend, scene, channels, args.device, repeats, warmup)
            torch.cuda.empty_cache()
        results.append(row)
        print(f"{scene:12s} {backend:6s} C={channels:3d}: fwd {row['fwd_ms']:.1f} ms, fwd+bwd {row['fwd_bwd_ms']:.1f} ms, peak {row['peak_mem_mb']:.0f} MB", flush=True)
    print()
    print_table(results, ["backend", "scene", "width", "height", "n_gaussians", "channels", "fwd_ms", "fwd_bwd_ms", "peak_mem_mb", "device"])
    write_json(args.json, {"results": results})


if __name__ == "__main__":
    main()
