"""Steps of the Triton tile binning's programs on the garden view, counted on CPU.

    python bench/bin_steps.py [--views 3] [--json PATH]

``triton_project._bin_kernel`` runs one warp per ``BIN_BLOCK`` consecutive (view, Gaussian) pairs
and visits every tile of each pair's 3.33-sigma rectangle (twice: counting, then writing). Walking
each lane over its own pair's rectangle, a program takes as many steps as its widest rectangle has
tiles; walking the program's (pair, tile) items BIN_BLOCK at a time, one per lane (the kernel's
way now), it takes ceil(items / BIN_BLOCK). This projects the benchmark's scene (``bench/raster.py``:
the garden SfM points, scales from the 3-NN distance, opacity 0.8) with the PyTorch path and counts
both, per camera: the steps of all programs (the work) and of the longest program (the kernel's
time when every program is resident at once, as on an H100 with one warp each). Steps are counts,
not times: ``bench/raster_profile.py`` times the kernel on a GPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table, write_json  # noqa: E402
from raster import load_scene  # noqa: E402

from mnemovision.kernels.gaussians import ref  # noqa: E402
from mnemovision.kernels.gaussians.triton_project import BIN_BLOCK  # noqa: E402


def rectangle_tiles(means2d, radii, opacities, width: int, height: int) -> torch.Tensor:
    """Tiles of each pair's rectangle [N], as the kernel counts them (0 where not visible)."""
    tile = ref.TILE_SIZE
    tiles_x, tiles_y = -(-width // tile), -(-height // tile)
    px, py = means2d[:, 0], means2d[:, 1]
    rx, ry = radii[:, 0].float(), radii[:, 1].float()
    x0 = ((px - rx) / tile).floor().clamp(0, tiles_x)
    x1 = ((px + rx) / tile).ceil().clamp(0, tiles_x)
    y0 = ((py - ry) / tile).floor().clamp(0, tiles_y)
    y1 = ((py + ry) / tile).ceil().clamp(0, tiles_y)
    visible = (rx > 0) & (ry > 0) & (opacities * 255.0 >= 1.0)
    return torch.where(visible, (x1 - x0).clamp(min=0) * (y1 - y0).clamp(min=0), torch.zeros_like(x0)).long()


def view_steps(view: int, n_box: torch.Tensor) -> dict:
    pad = (-n_box.numel()) % BIN_BLOCK
    per_program = torch.cat([n_box, n_box.new_zeros(pad)]).view(-1, BIN_BLOCK)
    looped = per_program.max(1).values
    balanced = -(-per_program.sum(1) // BIN_BLOCK)
    shown = n_box[n_box > 0].float()
    return {
        "view": view, "pairs": int(n_box.numel()), "items": int(n_box.sum()), "median_tiles": float(shown.median()),
        "max_tiles": int(n_box.max()), "programs": int(per_program.shape[0]),
        "lane_loop_steps": int(looped.sum()), "lane_loop_longest": int(looped.max()),
        "balanced_steps": int(balanced.sum()), "balanced_longest": int(balanced.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--views", type=int, default=3, help="the garden file's first this many cameras")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    (means, quats, scales, opac, _, viewmats, ks), width, height = load_scene("garden", 3, "cpu", views=args.views)
    means2d, _, _, radii, _ = ref.project_gaussians(means, ref.quat_scale_to_covar(quats, scales), viewmats, ks, width, height)
    rows = [view_steps(i, rectangle_tiles(means2d[i], radii[i], opac, width, height)) for i in range(viewmats.shape[0])]
    print_table(rows, ["view", "pairs", "items", "median_tiles", "max_tiles", "programs", "lane_loop_steps", "lane_loop_longest", "balanced_steps", "balanced_longest"])
    write_json(args.json, {"block": BIN_BLOCK, "results": rows})


if __name__ == "__main__":
    main()
