"""In which order the compositor should start its tiles, modelled on CPU on the garden view.

    python bench/tile_order.py [--views 1] [--slots 132,264,396] [--json PATH]

The batched compositor kernels run one program per (view, tile); a program walks its tile's list in
batches of BLOCK_G Gaussians until every pixel of the tile is opaque. GPU hardware starts programs in
launch order as earlier ones finish, with ``slots`` of them resident at once (SMs x programs per SM:
264 for the H100's picks, two programs per SM). A kernel lasts until its last program ends, so a
long list that starts late sets the kernel's time. This projects the benchmark's scene
(``bench/raster.py``: garden SfM points, opacity 0.8) with the PyTorch path, bins it as the Triton
path does (unseen entries dropped), walks each tile's pixels to find where the last one stops (the
batches a program runs: its "effective" length), and replays a list scheduler with every batch
costing one step and every program one more: the kernel's steps for tiles started in index order
(row by row), longest list first (``triton_project.isect_tiles(order=True)``, what the compositor
does with ``LONGEST_FIRST``), and nearest the image centre first. ``bound`` is the larger of the
longest program and the work per slot, which no order beats. A model of the schedule, not a timing:
``bench/raster_profile.py`` times the kernels on a GPU. ``empty_entries``: the entries walked that
reach no pixel of their tile (all their gradient sums zero); ``empty_warp_pct``: the share of (entry
walked, warp of 32 pixels) pairs that reach none of the warp's pixels, the work a CUDA rasterizer's
backward skips warp by warp (3DGS, gsplat) and a batched Triton kernel, whose branches are the whole
program's, computes; ``warp_walk_pct``: the entries the tile's 8 warps walk if each stops with its
own last pixel (one-warp sub-tile programs, ``triton_seq`` with SUB = 8), against 8 x the tile's.
"""

from __future__ import annotations

import argparse
import heapq
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table, write_json  # noqa: E402
from raster import load_scene  # noqa: E402

from mnemovision.kernels.gaussians import ref  # noqa: E402


def tile_lists(scene, view: int):
    """(list lengths [n_tiles], effective lengths [n_tiles], tiles_x, tiles_y, reach) of one view of
    ``scene`` (``load_scene``'s return). ``reach``: of the entries walked, how many reach no pixel of
    their tile (alpha below 1/255 wherever the pixel still takes light: their gradient sums are all
    zero), and of the (entry, warp of 32 pixels: two rows) pairs, how many and how many reach none
    (a CUDA rasterizer's backward skips those per warp; the batched Triton kernels cannot)."""
    (means, quats, scales, opac, _, viewmats, ks), width, height = scene
    means2d, conics, depths, radii, _ = ref.project_gaussians(means, ref.quat_scale_to_covar(quats, scales), viewmats[view:view + 1], ks[view:view + 1], width, height)
    tiles_x, tiles_y = math.ceil(width / ref.TILE_SIZE), math.ceil(height / ref.TILE_SIZE)
    n_tiles = tiles_x * tiles_y
    keys, ids, offsets = ref.isect_tiles(means2d, radii, depths, width, height)
    m2, con = means2d.reshape(-1, 2), conics.reshape(-1, 3)
    keys, ids, offsets = ref.drop_unseen(keys, ids, m2, con, opac, 1, n_tiles, tiles_x)
    lengths = offsets.diff()
    table = ref.gaussian_table(m2, con, opac)
    meta = {"tiles_x": tiles_x, "tiles_y": tiles_y, "tile_size": ref.TILE_SIZE, "block": 1}
    effective = torch.zeros(n_tiles, dtype=torch.long)
    reach = {"empty_entries": 0, "warp_pairs": 0, "empty_warp_pairs": 0, "warp_walks": 0}
    for tile in torch.nonzero(lengths).squeeze(-1).tolist():
        lay = ref._chunk_layout(torch.tensor([tile]), offsets, lengths, meta, torch.float32)
        px, py = lay.px[0], lay.py[0]
        inside = (px < width) & (py < height)
        g = ids[offsets[tile]:offsets[tile + 1]]
        alpha = ref._block_alphas(lay, ref.gather_table(table, g[None]), torch.ones(1, len(g)))[-1][0].T  # [L, P]
        below = torch.cumprod(1.0 - alpha, 0) < ref.T_MIN
        stopping = below.any(0)
        # a pixel composites the entries before its first Gaussian that would take it below T_MIN
        # (else the whole list) and walks that one too
        kept = torch.where(stopping, below.int().argmax(0), len(g))
        stops = kept + stopping.long()
        effective[tile] = int(stops[inside].max()) if bool(inside.any()) else 0
        walked = int(effective[tile])
        # composited: in the image, alpha >= 1/255 and the pixel not yet stopped before this entry
        reached = (alpha[:walked] > 0) & inside[None] & (torch.arange(walked)[:, None] < kept[None])  # [walked, P]
        reach["empty_entries"] += int((~reached.any(1)).sum())
        reach["warp_pairs"] += walked * (reached.shape[1] // 32)
        reach["empty_warp_pairs"] += int((~reached.reshape(walked, -1, 32).any(2)).sum())
        # a warp of the tile walking on its own (one-warp sub-tile programs) stops with its last pixel
        warp_stops = torch.where(inside, stops, 0).reshape(-1, 32).amax(1)
        reach["warp_walks"] += int(warp_stops.sum())
    return lengths, effective, tiles_x, tiles_y, reach


def steps(order, cost: list[int], slots: int) -> int:
    """Steps until the last program ends, programs started in ``order`` as slots free up."""
    free = [0] * slots
    last = 0
    for tile in order:
        start = heapq.heappop(free)
        last = max(last, start + cost[tile])
        heapq.heappush(free, start + cost[tile])
    return last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--views", type=int, default=1, help="the garden file's first this many cameras, each modelled alone")
    parser.add_argument("--slots", default="132,264,396", help="programs resident at once")
    parser.add_argument("--batches", default="8,16", help="Gaussians per batch (the H100 picks: backward 8, forward 16)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    scene = load_scene("garden", 3, "cpu", views=args.views)  # the garden file read once for every view
    rows = []
    for view in range(args.views):
        lengths, effective, tiles_x, tiles_y, reach = tile_lists(scene, view)
        empty = {"empty_entries": reach["empty_entries"], "empty_warp_pct": round(100.0 * reach["empty_warp_pairs"] / max(1, reach["warp_pairs"]), 1),
                 "warp_walk_pct": round(100.0 * reach["warp_walks"] / max(1, reach["warp_pairs"]), 1)}
        n = lengths.numel()
        index_order = list(range(n))
        longest_first = sorted(index_order, key=lambda t: (-int(lengths[t]), t))
        cx, cy = (tiles_x - 1) / 2, (tiles_y - 1) / 2
        centre_first = sorted(index_order, key=lambda t: ((t % tiles_x - cx) ** 2 + (t // tiles_x - cy) ** 2, t))
        for batch in (int(b) for b in args.batches.split(",")):
            cost = [-(-int(e) // batch) + 1 for e in effective.tolist()]
            for slots in (int(s) for s in args.slots.split(",")):
                rows.append({
                    "view": view, "tiles": n, "entries": int(lengths.sum()), "walked": int(effective.sum()), "longest_list": int(lengths.max()),
                    "batch": batch, "slots": slots, "bound": max(max(cost), -(-sum(cost) // slots)),
                    "index_order": steps(index_order, cost, slots), "longest_first": steps(longest_first, cost, slots),
                    "centre_first": steps(centre_first, cost, slots), **empty,
                })
    print_table(rows, ["view", "tiles", "entries", "walked", "empty_entries", "empty_warp_pct", "warp_walk_pct", "longest_list", "batch", "slots", "bound", "index_order", "longest_first", "centre_first"])
    write_json(args.json, {"t_min": ref.T_MIN, "results": rows})


if __name__ == "__main__":
    main()
