"""Search steps of the Triton top-k selection, counted on CPU for the benchmark's inputs.

    python bench/topk_steps.py [--cases vos_T2,vos_T20] [--queries 256] [--probes 1,4,8] [--json PATH]

``triton_topk._select_kernel`` picks, per query, the top tiles by their maxima and then the top-k
keys among the tiles' candidates, each pick by a search on the values' order-preserving int32
bits (``_take_largest``). This replays the two searches in PyTorch, all queries at once, on the
inputs ``bench/attention.py`` times (seeded N(0, 1) q, k in float16, dot similarity, top-k 30, the
tile size ``_tile_size`` picks), with each search's own starting bound, and counts the steps per
query: searching until the k-th largest value is pinned to the last bit by bisection ("full"), and
stopping at the first count of exactly k ("exact stop", the kernel's rule) with each of
``--probes`` thresholds counted per step (the kernel's ``SEARCH_PROBES``; 1 is bisection). Steps
are counts, not times: each is one block-wide reduction in the kernel, whose cost on a GPU is for
``bench/attention_profile.py`` to show.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attention import CASES, TOPK_CASES, make_inputs  # noqa: E402
from common import print_table, write_json  # noqa: E402

from mnemovision.kernels._launch import next_pow2  # noqa: E402
from mnemovision.kernels.attention import ref  # noqa: E402

TOP_K = 30
_INT32_MAX = 2**31 - 1


def ordered(values: torch.Tensor) -> torch.Tensor:
    """int64 holding int32s whose order is the order of the float32 ``values`` (as ``_ordered``)."""
    bits = values.float().view(torch.int32).to(torch.int64)
    flipped = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return flipped


def search_steps(o: torch.Tensor, valid: torch.Tensor, k: int, start: torch.Tensor | None, exact_stop: bool, probes: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(threshold [Q], steps [Q]) of the search for each row of ``o`` [Q, N] (ordered ints;
    ``valid`` marks the real entries): count(o >= threshold) >= k, as in ``_take_largest``, with
    ``probes`` counts per step at lo + ceil(span j / (probes + 1)), j = 1..probes (1: bisection)."""
    lo = torch.where(valid, o, _INT32_MAX).min(1).values
    hi = o.max(1).values
    if start is not None:
        ok = (o >= start[:, None]).sum(1) >= k
        lo = torch.where(ok, torch.maximum(lo, start), lo)
    steps = torch.zeros_like(lo)
    j = torch.arange(1, probes + 1)
    while bool((lo < hi).any()):
        active = lo < hi
        th = lo[:, None] + ((hi - lo)[:, None] * j + probes) // (probes + 1)  # [Q, probes], ceil
        count = (o[:, None, :] >= th[:, :, None]).sum(2)
        enough = count >= k
        new_lo = torch.maximum(lo, torch.where(enough, th, lo[:, None]).amax(1))
        new_hi = torch.minimum(hi, torch.where(enough, hi[:, None], th - 1).amin(1))
        if exact_stop:
            exact = count == k
            hit = torch.where(exact, th, lo[:, None]).amax(1)
            new_lo = torch.where(exact.any(1), hit, new_lo)
            new_hi = torch.where(exact.any(1), hit, new_hi)
        lo, hi = torch.where(active, new_lo, lo), torch.where(active, new_hi, hi)
        steps += active.to(steps.dtype)
    return lo, steps


def case_steps(name: str, queries: int, probe_counts: list[int]) -> list[dict]:
    from mnemovision.kernels.attention import triton_topk

    case = CASES[name]
    q, k, _ = make_inputs(case, "cpu", torch.float16, grad=False)
    q, k = q[0, 0, :queries].float(), k[0, 0].float()
    scale = ref.default_scale("dot", case["d"])
    logits = scale * q @ k.T  # [Q, M]
    m = logits.shape[1]
    tile = triton_topk._tile_size(m, TOP_K)
    n_tiles = -(-m // tile)
    padded = torch.full((queries, n_tiles * tile), float("-inf"))
    padded[:, :m] = logits
    tile_max = padded.view(queries, n_tiles, tile).amax(2)
    kt = min(TOP_K, n_tiles)
    block_kt = next_pow2(kt)
    block_t = next_pow2(n_tiles)
    o_tiles = torch.full((queries, block_t), -_INT32_MAX - 1, dtype=torch.int64)
    o_tiles[:, :n_tiles] = ordered(tile_max)
    # the kernel's first bound: the least of BLOCK_KT strided groups' maxima (padding groups: none)
    bound = o_tiles.view(queries, block_t // block_kt, block_kt).amax(1).amin(1)
    rows = []
    best = torch.topk(tile_max, kt, dim=1).indices
    keys = (best[:, :, None] * tile + torch.arange(tile)).view(queries, -1)
    cand = torch.gather(padded, 1, keys)
    for exact_stop, probes in [(False, 1)] + [(True, p) for p in probe_counts]:
        first, steps1 = search_steps(o_tiles[:, :n_tiles], torch.ones_like(tile_max, dtype=torch.bool), kt, bound, exact_stop, probes)
        _, steps2 = search_steps(ordered(cand), keys < m, TOP_K, first, exact_stop, probes)
        rows.append({
            "case": name, "m": m, "tile": tile, "rule": f"exact stop, probes={probes}" if exact_stop else "full",
            "tile_pick_steps": float(steps1.float().mean()), "key_pick_steps": float(steps2.float().mean()),
            "max_steps": int((steps1 + steps2).max()), "queries": queries,
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(TOPK_CASES))
    parser.add_argument("--queries", type=int, default=256, help="the first this many of the case's 1,620 queries")
    parser.add_argument("--probes", default="1,4,8", help="thresholds counted per search step (the kernel's SEARCH_PROBES)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    probes = [int(p) for p in args.probes.split(",")]
    rows = [row for name in args.cases.split(",") for row in case_steps(name, args.queries, probes)]
    print_table(rows, ["case", "m", "tile", "rule", "tile_pick_steps", "key_pick_steps", "max_steps"])
    if args.json:
        write_json(args.json, {"results": rows})


if __name__ == "__main__":
    main()
