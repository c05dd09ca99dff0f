"""Memory-attention benchmark: the shapes the methods use, every backend side by side.

    python bench/attention.py [--quick] [--device cpu|cuda] [--dtype float16] [--cases vos_T20:topk,mcnet] [--backends naive,triton] --json PATH

Cases: VOS readout at 480p (Nq = 1620 tokens, M = 1620 T, D = 64, Dv = 512, dense and top-k 30),
MCNet (Nq = 16384, M = 1024, D = Dv = 256), M3 (Nq = 64x64, M = 4096, D = 160, Dv = 768, cosine,
temperature 0.05). Backends: ``torch`` and ``triton`` (mnemovision), ``naive`` (materialised logits;
for top-k: materialise + torch.topk + gather) and ``sdpa`` (torch.nn.functional.scaled_dot_product_attention,
dense cases only). On CPU each measurement runs in a fresh subprocess so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_mb, print_table, time_ms, write_json  # noqa: E402

from mnemovision.kernels import memory_attention  # noqa: E402
from mnemovision.kernels.attention import ref  # noqa: E402

CASES = {
    "vos_T2": dict(nq=1620, m=1620 * 2, d=64, dv=512, similarity="dot"),
    "vos_T5": dict(nq=1620, m=1620 * 5, d=64, dv=512, similarity="dot"),
    "vos_T10": dict(nq=1620, m=1620 * 10, d=64, dv=512, similarity="dot"),
    "vos_T20": dict(nq=1620, m=1620 * 20, d=64, dv=512, similarity="dot"),
    "mcnet": dict(nq=16384, m=1024, d=256, dv=256, similarity="dot"),
    "m3": dict(nq=64 * 64, m=4096, d=160, dv=768, similarity="cosine", temperature=0.05),
}
TOPK_CASES = ("vos_T2", "vos_T5", "vos_T10", "vos_T20")


def make_inputs(case: dict, device: str, dtype: torch.dtype, grad: bool):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 1, case["nq"], case["d"], generator=g)
    k = torch.randn(1, 1, case["m"], case["d"], generator=g)
    v = torch.randn(1, 1, case["m"], case["dv"], generator=g)
    return [t.to(device=device, dtype=dtype).requires_grad_(grad) for t in (q, k, v)]


def runner(case: dict, backend: str, top_k: int | None):
    """A function (q, k, v) -> out for the backend."""
    sim = case["similarity"]
    scale = 1.0 / case["temperature"] if "temperature" in case else ref.default_scale(sim, case["d"])

    if backend in ("torch", "triton"):
        return lambda q, k, v: memory_attention(q, k, v, top_k=top_k, similarity=sim, scale=scale, backend=backend)
    if backend == "naive":
        def naive(q, k, v):
            qp, kp, bias, factor = ref.prepare(q, k, sim, scale, None)
            if top_k is None:
                return ref.attention_naive(qp, kp, v, bias, scale=factor)[0]
            return ref.attention_naive_topk_gather(qp, kp, v, bias, top_k, scale=factor)

        return naive
    if backend == "sdpa":
        def sdpa(q, k, v):
            if sim == "cosine":
                q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
            return F.scaled_dot_product_attention(q, k, v, scale=scale)

        return sdpa
    raise ValueError(backend)


def measure(case_name: str, backend: str, top_k: int | None, device: str, dtype: torch.dtype, warmup: int, repeats: int) -> dict:
    case = CASES[case_name]
    fn = runner(case, backend, top_k)
    q, k, v = make_inputs(case, device, dtype, grad=True)

    def forward():
        with torch.no_grad():
            return fn(q, k, v)

    def forward_backward():
        out = fn(q, k, v)
        out.backward(torch.ones_like(out))
        q.grad = k.grad = v.grad = None

    peak = peak_mb(forward_backward, device)
    return {
        "case": case_name,
        "backend": backend,
        "top_k": top_k,
        "nq": case["nq"],
        "m": case["m"],
        "d": case["d"],
        "dv": case["dv"],
        "dtype": str(dtype).replace("torch.", ""),
        "fwd_ms": time_ms(forward, device, warmup, repeats),
        "fwd_bwd_ms": time_ms(forward_backward, device, warmup, repeats),
        "peak_mem_mb": peak,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
    }


def plan(quick: bool, device: str, cases: str | None = None, backends: str | None = None) -> list[tuple[str, str, int | None]]:
    """(case, backend, top_k) jobs: every case (``--quick``: four) and backend, or the comma-separated
    ``cases`` / ``backends`` subsets; a case written ``name:dense`` or ``name:topk`` runs that readout only."""
    entries = cases.split(",") if cases else (["vos_T2", "vos_T20", "mcnet", "m3"] if quick else list(CASES))
    wanted = [entry.partition(":")[::2] for entry in entries]
    bad = [entry for entry, (name, mode) in zip(entries, wanted) if name not in CASES or mode not in ("", "dense", "topk")]
    if bad:
        raise SystemExit(f"unknown case(s) {bad}; choose from {sorted(CASES)}, optionally with :dense or :topk")
    available = ["torch", "naive", "sdpa"] + (["triton"] if device == "cuda" else [])
    backends = [b for b in available if b in backends.split(",")] if backends else available
    jobs = []
    for name, mode in wanted:
        if mode != "topk":
            for backend in backends:
                jobs.append((name, backend, None))
        if name in TOPK_CASES and mode != "dense":
            for backend in [b for b in backends if b != "sdpa"]:
                jobs.append((name, backend, 30))
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer cases and repeats (CPU: under a few minutes)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, help="float32 on CPU (default), float16 on GPU (default)")
    parser.add_argument("--json", default=None, help="write {'results': [...]} here")
    parser.add_argument("--cases", default=None, help=f"comma-separated subset of {','.join(CASES)}")
    parser.add_argument("--backends", default=None, help="comma-separated subset of torch,naive,sdpa,triton (triton on CUDA only)")
    parser.add_argument("--one", nargs=3, metavar=("CASE", "BACKEND", "TOPK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype or ("float16" if args.device == "cuda" else "float32"))
    # on a GPU, medians of many calls: a call's wall time varies with the host's (2026-11-29: +-30%)
    warmup, repeats = (1, 3) if args.device == "cpu" else (10, 50)
    if args.quick:
        warmup, repeats = (1, 2) if args.device == "cpu" else (2, 5)
    if args.one:  # a single CPU measurement in its own process (for an honest peak RSS)
        case, backend, top_k = args.one
        print(json.dumps(measure(case, backend, None if top_k == "none" else int(top_k), args.device, dtype, warmup, repeats)))
        return
    results = []
    for case, backend, top_k in plan(args.quick, args.device, args.cases, args.backends):
        if args.device == "cpu":
            cmd = [sys.executable, __file__, "--device", "cpu", "--dtype", str(dtype).replace("torch.", ""), "--one", case, backend, str(top_k).lower()]
            if args.quick:
                cmd.insert(2, "--quick")
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
        else:
            row = measure(case, backend, top_k, args.device, dtype, warmup, repeats)
            torch.cuda.empty_cache()
        results.append(row)
        print(f"{case:8s} {backend:6s} top_k={top_k}: fwd {row['fwd_ms']:.2f} ms, fwd+bwd {row['fwd_bwd_ms']:.2f} ms, peak {row['peak_mem_mb']:.1f} MB", flush=True)
    print()
    print_table(results, ["case", "backend", "top_k", "dtype", "fwd_ms", "fwd_bwd_ms", "peak_mem_mb", "device"])
    write_json(args.json, {"results": results})


if __name__ == "__main__":
    main()
