"""The GPU targets of the kernel issues, checked against benchmark JSON.

    python bench/targets.py [--dir bench/out] [--json PATH]

Reads ``attention_gpu.json`` (``bench/attention.py``) and ``raster_gpu.json`` (``bench/raster.py``)
from ``--dir`` (what ``bench/gpu_check.sh`` leaves in ``$OUT``), whichever are there, and prints
one row per target and measured case: the two times compared, their ratio, the target and whether
it is met. Targets (issues 3 and 5):

- dense memory attention: Triton within 1.25x of SDPA (forward, forward+backward);
- top-k memory attention: Triton at least 3x faster than the naive readout (forward,
  forward+backward);
- rasterizer: Triton forward+backward at least as fast as gsplat's at C = 3 and at least 2x faster
  at C = 160, on the full garden view.

Only rows measured on the same device in one file are compared.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table, write_json  # noqa: E402

DENSE_WITHIN = 1.25
TOPK_SPEEDUP = 3.0
RASTER_SPEEDUP = {3: 1.0, 160: 2.0}


def _index(rows: list[dict], keys: tuple[str, ...]) -> dict:
    return {tuple(row.get(k) for k in keys): row for row in rows}


def attention_checks(rows: list[dict]) -> list[dict]:
    """Rows of (case, part, ours, theirs, ratio, target, met) for the dense and top-k targets."""
    by = _index(rows, ("case", "backend", "top_k", "device"))
    checks = []
    for (case, backend, top_k, device), row in sorted(by.items(), key=lambda item: str(item[0])):
        if backend != "triton":
            continue
        peer = by.get((case, "sdpa" if top_k is None else "naive", top_k, device))
        if peer is None:
            continue
        for part in ("fwd_ms", "fwd_bwd_ms"):
            ours, theirs = row[part], peer[part]
            if top_k is None:  # ours / SDPA's time, at most 1.25
                ratio, target, met = ours / theirs, f"<= {DENSE_WITHIN}x SDPA", ours <= DENSE_WITHIN * theirs
            else:  # naive's time / ours, at least 3
                ratio, target, met = theirs / ours, f">= {TOPK_SPEEDUP}x faster than naive", theirs >= TOPK_SPEEDUP * ours
            checks.append({
                "target": "dense" if top_k is None else f"top-{top_k}", "case": case, "part": part.removesuffix("_ms"),
                "triton_ms": ours, "peer_ms": theirs, "ratio": round(ratio, 3), "goal": target, "met": met, "device": device,
            })
    return checks


def raster_checks(rows: list[dict]) -> list[dict]:
    """Rows of the rasterizer targets: gsplat's forward+backward time / Triton's, at least 1 at C = 3
    and 2 at C = 160."""
    by = _index(rows, ("backend", "scene", "channels", "device"))
    checks = []
    for (backend, scene, channels, device), row in sorted(by.items(), key=lambda item: str(item[0])):
        peer = by.get(("gsplat", scene, channels, device))
        if backend != "triton" or peer is None or channels not in RASTER_SPEEDUP:
            continue
        need = RASTER_SPEEDUP[channels]
        ours, theirs = row["fwd_bwd_ms"], peer["fwd_bwd_ms"]
        checks.append({
            "target": f"raster C={channels}", "case": scene, "part": "fwd_bwd", "triton_ms": ours, "peer_ms": theirs,
            "ratio": round(theirs / ours, 3), "goal": f">= {need}x gsplat's speed", "met": theirs >= need * ours, "device": device,
        })
    return checks


def load(path: Path) -> list[dict]:
    """The ``results`` list of a benchmark JSON; a clear error for a file of another shape."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise SystemExit(f"{path}: expected a JSON object with a list 'results' (a bench/*.py --json file)")
    return data["results"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default="bench/out", help="where attention_gpu.json and raster_gpu.json are")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    folder = Path(args.dir)
    checks = []
    for name, check in (("attention_gpu.json", attention_checks), ("raster_gpu.json", raster_checks)):
        if (folder / name).exists():
            checks += check(load(folder / name))
    if not checks:
        raise SystemExit(f"no comparable rows in {folder} (attention_gpu.json: triton beside sdpa/naive; raster_gpu.json: triton beside gsplat)")
    print_table(checks, ["target", "case", "part", "triton_ms", "peer_ms", "ratio", "goal", "met", "device"])
    write_json(args.json, {"results": checks})


if __name__ == "__main__":
    main()
