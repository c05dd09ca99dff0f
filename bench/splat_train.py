"""Train the bundled scene with the default `splat fit` recipe and report test metrics.

    python bench/splat_train.py [--iterations N] [--size S] --json PATH

Generates the bundled scene (50 views; 128x128 by default) in a temporary folder, fits it with
the same configuration as ``mnemovision splat fit`` and writes {"psnr", "ssim", "train_seconds",
"n_gaussians", "size_mb", ...} for the 7 test views (every 8th image). Target on 2 CPU cores:
test PSNR >= 30 dB within 10 minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402

from mnemovision.splatting.data.scene import load_scene  # noqa: E402
from mnemovision.splatting.data.synthetic import SceneSpec, make_scene  # noqa: E402
from mnemovision.splatting.fit import FitConfig, fit  # noqa: E402
from mnemovision.splatting.gaussians.density import DensityConfig  # noqa: E402


def default_config(iterations: int) -> FitConfig:
    """The `splat fit` CLI's recipe for a run of ``iterations`` steps."""
    density = DensityConfig(refine_start=max(1, iterations // 20), refine_stop=iterations // 2, refine_every=100, reset_every=max(iterations // 3, 1) if iterations >= 3000 else 10**9)
    return replace(FitConfig(), iterations=iterations, eval_every=max(1, iterations // 10), sh_every=max(1, iterations // 4), density=density)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--json", default=None)
    parser.add_argument("--out", default=None, help="also keep renders, curve and PLY here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        make_scene(tmp, SceneSpec(size=args.size))
        scene = load_scene(tmp)
        result = fit(scene, default_config(args.iterations), out_dir=args.out)
    row = {k: result.metrics[k] for k in ("psnr", "ssim", "train_seconds", "n_gaussians", "size_mb", "iterations", "render_fps", "width", "height")}
    row["curve"] = result.curve
    print(json.dumps(row, indent=2))
    write_json(args.json, row)


if __name__ == "__main__":
    main()
