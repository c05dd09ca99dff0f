"""Where the time of a memory readout goes on a GPU: CUDA kernel times (torch.profiler) of the Triton
path beside the naive one (top-k: materialise + ``torch.topk``) and, for dense readouts, PyTorch's
SDPA, with their wall time per call and launch counts.

    python bench/attention_profile.py [--case vos_T20] [--top-k 30 | --top-k 0 (dense)] [--backward] [--tiles 8,16,32] [--probes 1,4,8] [--key-grads both]

``--tiles`` profiles the Triton top-k path once per selection tile size (by default it runs with the
size ``triton_topk._tile_size`` picks for the case); ``--probes`` once per number of thresholds
the selection's searches count per step (``triton_topk.SEARCH_PROBES``; 1 is bisection).
``--key-grads both`` profiles the dense Triton backward twice: dK and dV in one kernel where Dv
allows (``triton_impl.FUSE_KEY_GRADS``, the default) and in two.

Prints one kernel table per backend (not a JSON benchmark: ``bench/attention.py`` is the record).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attention import CASES, make_inputs, runner  # noqa: E402
from common import print_kernel_profile  # noqa: E402

from mnemovision.kernels.attention import triton_impl, triton_topk  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", default="vos_T20", choices=sorted(CASES))
    parser.add_argument("--top-k", type=int, default=30, help="0 profiles the dense readout")
    parser.add_argument("--backward", action="store_true", help="profile forward+backward")
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--tiles", default=None, help="top-k: selection tile sizes to profile the Triton path with, e.g. 8,16,32")
    parser.add_argument("--probes", default=None, help="top-k: thresholds counted per search step to profile the Triton path with, e.g. 1,4,8")
    parser.add_argument("--key-grads", default="default", choices=["default", "fused", "split", "both"], help="dense backward: dK and dV in one kernel, in two, or both")
    args = parser.parse_args()
    case = CASES[args.case]
    top_k = args.top_k or None
    tiles = [int(t) for t in args.tiles.split(",")] if (args.tiles and top_k) else [None]
    fusions = {"default": [triton_impl.FUSE_KEY_GRADS], "fused": [True], "split": [False], "both": [True, False]}[args.key_grads]
    probe_counts = [int(p) for p in args.probes.split(",")] if (args.probes and top_k) else [None]
    runs = [("triton", t, f, p) for t in tiles for f in fusions for p in probe_counts] + [("naive", None, None, None)] + ([("sdpa", None, None, None)] if top_k is None else [])
    for backend, tile, fuse, probes in runs:
        if tile is not None:  # _tile_size then picks this size (if its tile row fits the registers)
            triton_topk.TILES = (tile,)
        if probes is not None:
            triton_topk.SEARCH_PROBES = probes
        if fuse is not None:
            triton_impl.FUSE_KEY_GRADS = fuse
        fn = runner(case, backend, top_k)
        q, k, v = make_inputs(case, "cuda", torch.float16, grad=args.backward)

        def call():
            if args.backward:
                out = fn(q, k, v)
                out.backward(torch.ones_like(out))
                q.grad = k.grad = v.grad = None
            else:
                with torch.no_grad():
                    fn(q, k, v)

        size = f" tile={triton_topk._tile_size(case['m'], top_k)} probes={triton_topk.SEARCH_PROBES}" if (backend == "triton" and top_k) else ""
        key_grads = f" key-grads={'fused' if fuse else 'split'}" if (backend == "triton" and top_k is None and args.backward) else ""
        title = f"{backend}{size}{key_grads} {args.case} top_k={top_k} {'fwd+bwd' if args.backward else 'fwd'}"
        print_kernel_profile(title, call, "cuda", args.calls, rows=12, warmup=3)


if __name__ == "__main__":
    main()
