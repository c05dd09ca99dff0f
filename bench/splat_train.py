"""Train the bundled scene with the default `splat fit` recipe and report test metrics.

    python bench/splat_train.py [--iterations N] [--size S] --json PATH

Generates the bundled scene (50 views; 128x128 by default) in a temporary folder, fits it with
the same configuration as ``mnemovision splat fit`` (mmengine, config ``splat_bundled``) and writes {"psnr", "ssim", "train_seconds",
"n_gaussians", "size_mb", ...} for the 7 test views (every 8th image). Target on 2 CPU cores:
test PSNR >= 30 dB within 10 minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402

from mnemovision.splatting.data.synthetic import SceneSpec, make_scene  # noqa: E402
from mnemovision.splatting.engine import fit_scene  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--json", default=None)
    parser.add_argument("--out", default=None, help="also keep renders, curve and PLY here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        make_scene(Path(tmp) / "scene", SceneSpec(size=args.size))
        out = args.out or str(Path(tmp) / "fit")
        start = time.perf_counter()
        result = fit_scene(Path(tmp) / "scene", out, args.iterations, orbit_frames=0)
        wall = time.perf_counter() - start
    row = {k: result.metrics[k] for k in ("psnr", "ssim", "train_seconds", "n_gaussians", "size_mb", "iterations", "render_fps", "width", "height")}
    row["wall_seconds"] = wall  # the whole run: training, 10 test evaluations, checkpoints, outputs
    row["curve"] = result.curve
    print(json.dumps(row, indent=2))
    write_json(args.json, row)


if __name__ == "__main__":
    main()
