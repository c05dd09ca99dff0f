"""Train EDSR-baseline x2 dense and at 90% sparsity (ISS-P, one-shot magnitude, L1-norm filters) with
the shipped CPU recipe (config ``sr_edsr_x2``: the same data and iterations for every method),
score each on Set5 beside bicubic, and compare file sizes and CPU speed.

    python bench/sr.py [--iterations 2000] [--methods dense,iss-p,magnitude,l1-filter] --json PATH [--ship]

Pruned methods make their mask at half the run and fine-tune the rest, with the learning rate held
until the mask and the cosine restarted for the fine-tuning (the ISS-P code's two stages). ISS-P
(defaults = config ``sr_edsr_x2_issp90``): dense until 0.4 of the run, then soft shrinkage with alpha
0.98 until the mask; one-shot methods: dense until the mask. ISS-P and magnitude pruning keep the
image-facing convs dense (``--skip``) and prune the others a little more, for 90% overall.
``--alpha 0.95 --shrink-frac 0 --skip '' --no-restart`` is the earlier recipe (the paper's alpha,
shrinking from the first step, every layer pruned alike, one cosine over the whole run).
Writes {"results": [{"model", "method", "sparsity", "scale", "psnr_y", "ssim_y", "params_nonzero",
"file_mb", "cpu_ms_per_mpix", "cpu_ms_per_mpix_sparse"}]}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table, write_json  # noqa: E402

from mnemovision.engine import build_runner, config_type, load_config  # noqa: E402
from mnemovision.sr.api import evaluate_folder, load_upscaler  # noqa: E402
from mnemovision.sr.data import benchmark_pairs, resolve_benchmark  # noqa: E402
from mnemovision.sr.engine import FilterPruneHook, ISSPHook, MagnitudePruneHook  # noqa: E402
from mnemovision.sr.export import save_sr_model  # noqa: E402
from mnemovision.sr.models import build_sr_model  # noqa: E402
from mnemovision.sr.pruning import layer_sparsity_for, prunable_weights  # noqa: E402

SCALE = 2
SPARSITY = 0.9
WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "mnemovision" / "sr" / "weights"


def shipped_issp() -> dict:
    """The ISS-P hook of config ``sr_edsr_x2_issp90`` with its run length: the bench's defaults."""
    cfg = load_config("sr_edsr_x2_issp90")
    (hook,) = [h for h in cfg.custom_hooks if h["type"] is ISSPHook]
    return {**hook, "max_iters": cfg.train_cfg.max_iters}


def hook_for(method: str, mask_at: int, alpha: float, skip: tuple[str, ...], shrink_from: int):
    sparsity = layer_sparsity_for(build_sr_model("edsr", "baseline", SCALE), SPARSITY, skip)
    return {
        "dense": None,
        "iss-p": dict(type=config_type(ISSPHook), sparsity=sparsity, alpha=alpha, prune_iters=mask_at, skip=skip, shrink_from=shrink_from),
        "magnitude": dict(type=config_type(MagnitudePruneHook), sparsity=sparsity, prune_at=mask_at, skip=skip),
        "l1-filter": dict(type=config_type(FilterPruneHook), sparsity=SPARSITY, prune_at=mask_at),
    }[method]


def train(method: str, iterations: int, work_dir: Path, alpha: float, skip: tuple[str, ...], prune_frac: float, restart: bool,
          shrink_frac: float, seed: int = 0):
    cfg = load_config("sr_edsr_x2")
    cfg.randomness = dict(seed=seed)
    cfg.train_cfg.max_iters = iterations
    cfg.train_cfg.val_interval = iterations
    cfg.param_scheduler[0].T_max = cfg.param_scheduler[0].end = iterations
    mask_at = int(round(iterations * prune_frac))
    if restart and method != "dense":  # the ISS-P code's stages: constant LR, then a fresh schedule
        cfg.param_scheduler[0].begin, cfg.param_scheduler[0].T_max = mask_at, iterations - mask_at
    hook = hook_for(method, mask_at, alpha, skip, int(round(iterations * shrink_frac)))
    cfg.default_hooks.checkpoint.interval = iterations
    if hook is not None:
        cfg.custom_hooks.append(hook)
    runner = build_runner(cfg, work_dir=work_dir)
    runner.train()
    return runner.model.net.eval()


def ms_per_mpix(upscale, lr: np.ndarray, repeats: int = 3) -> float:
    upscale(lr)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        upscale(lr)
        times.append(time.perf_counter() - start)
    out_mpix = lr.shape[0] * lr.shape[1] * SCALE * SCALE / 1e6
    return 1000.0 * float(np.median(times)) / out_mpix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--methods", default="dense,iss-p,magnitude,l1-filter")
    parser.add_argument("--data", default=None, help="benchmark folder (default: Set5 from the shared data)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--ship", action="store_true", help="copy the ISS-P model into the package")
    issp = shipped_issp()
    parser.add_argument("--alpha", type=float, default=issp["alpha"], help="ISS-P shrink factor (default: config sr_edsr_x2_issp90's; "
                        "the paper's commands: 0.95)")
    parser.add_argument("--skip", default=",".join(issp["skip"]), help="comma-separated layer globs kept dense by ISS-P and magnitude "
                        "pruning (the other layers are pruned a little more, so that 90%% of all prunable weights are zero); default: "
                        "config sr_edsr_x2_issp90's (the image-facing convs); '' prunes every layer alike")
    parser.add_argument("--restart", action=argparse.BooleanOptionalAction, default=True, help="pruned methods: constant LR until "
                        "the mask, then the cosine schedule restarted over the fine-tuning (the ISS-P code's two stages; "
                        "config sr_edsr_x2_issp90); --no-restart: the dense run's schedule")
    parser.add_argument("--shrink-frac", type=float, default=issp["shrink_from"] / issp["max_iters"], help="ISS-P: fraction of the run "
                        "trained dense before the soft shrinkage starts (default: config sr_edsr_x2_issp90's; 0: from the first step, as the paper)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (initialisation and patch order)")
    parser.add_argument("--prune-frac", type=float, default=issp["prune_iters"] / issp["max_iters"], help="fraction of the run before "
                        "the hard mask (ISS-P) / the one-shot prune (default: config sr_edsr_x2_issp90's)")
    args = parser.parse_args()
    folder = resolve_benchmark(args.data)
    skip = tuple(g for g in args.skip.split(",") if g)
    timing_lr = benchmark_pairs(folder, SCALE)[0][1]  # baby, 256x256 LR -> 512x512
    bicubic = load_upscaler("bicubic", SCALE)
    scores = evaluate_folder(bicubic, folder, SCALE)
    rows = [{"model": "bicubic", "method": "bicubic", "sparsity": 0.0, "scale": SCALE, "psnr_y": scores["psnr_y"], "ssim_y": scores["ssim_y"],
             "params_nonzero": 0, "file_mb": 0.0, "cpu_ms_per_mpix": ms_per_mpix(bicubic, timing_lr), "cpu_ms_per_mpix_sparse": None}]
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods.split(","):
            net = train(method, args.iterations, Path(tmp) / method, args.alpha, skip, args.prune_frac, args.restart, args.shrink_frac, args.seed)
            path = save_sr_model(Path(tmp) / f"edsr_baseline_x2_{method}.safetensors", net, "edsr", "baseline", SCALE, method)
            upscaler = load_upscaler(path, SCALE)  # the reloaded file: what ships is what is scored
            reloaded, meta = upscaler.net, upscaler.meta
            scores = evaluate_folder(upscaler, folder, SCALE)
            weights = prunable_weights(reloaded)
            sparse_ms = ms_per_mpix(load_upscaler(path, SCALE, sparse=True), timing_lr) if method != "dense" else None
            rows.append({
                "model": "edsr-baseline", "method": method, "sparsity": float(meta["sparsity"]), "scale": SCALE,
                "psnr_y": scores["psnr_y"], "ssim_y": scores["ssim_y"],
                "params_nonzero": int(sum(int((p != 0).sum()) for p in reloaded.parameters())),
                "prunable_nonzero": int(sum(int((w != 0).sum()) for w in weights.values())),
                "file_mb": path.stat().st_size / 2**20,
                "cpu_ms_per_mpix": ms_per_mpix(upscaler, timing_lr),
                "cpu_ms_per_mpix_sparse": sparse_ms,
                "iterations": args.iterations, "alpha": args.alpha if method == "iss-p" else None,
                "skip": list(skip) if method in ("iss-p", "magnitude") else [], "prune_frac": args.prune_frac if method != "dense" else None,
                "restart": args.restart if method != "dense" else None,
                "shrink_frac": args.shrink_frac if method == "iss-p" else None, "seed": args.seed,
            })
            print(json.dumps(rows[-1]), flush=True)
            if args.ship and method == "iss-p":  # compressed, float32: exactly the model scored here
                WEIGHTS.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, WEIGHTS / "edsr_baseline_x2_issp90.safetensors")
            if args.ship and method == "dense":  # float16 (2.6 MB), for the demo's side-by-side view
                save_sr_model(WEIGHTS / "edsr_baseline_x2_dense_fp16.safetensors", net, "edsr", "baseline", SCALE, "dense", dtype=torch.float16)
    print_table(rows, ["method", "sparsity", "psnr_y", "ssim_y", "params_nonzero", "file_mb", "cpu_ms_per_mpix", "cpu_ms_per_mpix_sparse"])
    write_json(args.json, {"results": rows, "device": "cpu", "threads": torch.get_num_threads()})


if __name__ == "__main__":
    main()
