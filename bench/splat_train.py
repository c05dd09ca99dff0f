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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402

from mnemovision.splatting.data.scene import load_scene  # noqa: E402
from mnemovision.splatting.data.synthetic import SceneSpec, make_scene  # noqa: E402
from mnemovision.splatting.fit import fit, recipe  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--json", default=None)
    parser.add_argument("--out", default=None, help="also keep renders, curve and PLY here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        make_scene(tmp, SceneSpec(size=args.size))
        scene = load_scene(tmp)
        result = fit(scene, recipe(args.iterations, scene.width, scene.height), out_dir=args.out)
    row = {k: result.metrics[k] for k in ("psnr", "ssim", "train_seconds", "n_gaussians", "size_mb", "iterations", "render_fps", "width", "height")}
    row["curve"] = result.curve
    print(json.dumps(row, indent=2))
    write_json(args.json, row)


if __name__ == "__main__":
    main()
