"""Video object segmentation: J&F, speed and memory of each model on DAVIS-format sequences, and a
long-video mode that checks memory stays flat.

    python bench/vos.py [--data DIR] [--sequences a,b] [--models copy-first,flow,jointformer-tiny,LABEL=FILE.safetensors] --json PATH
    python bench/vos.py --long 2000 --json PATH      # memory every 100 frames of a 2,000-frame video

Default data: the shared DAVIS-2016 sequences held out from training (``vos.clips.DAVIS16_HELD_OUT``).
Models: ``copy-first``, ``flow`` (OpenCV DIS), ``jointformer-tiny`` (the shipped weights; skipped
with a note when absent), JointFormer files. Frames come at their stored size (854x480); JointFormer
resizes them to the internal size stored in its file (``--internal-size`` overrides). ``fps`` counts
``session.step`` time, first-frame adaptation included; ``adapt_s`` is the adaptation's mean seconds
per sequence (0 without it). Writes {"results": [{"model", "sequences", "J", "F", "JF", "fps",
"adapt_s", "peak_mem_mb", "settings"}]} (and "long" rows).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import max_rss_mb, print_table, reset_peak_rss, rss_mb, write_json  # noqa: E402

from mnemovision.vision.data import shared_data_path  # noqa: E402
from mnemovision.vos.api import SHIPPED_JOINTFORMER, VOSSession, load_model  # noqa: E402
from mnemovision.vos.clips import DAVIS16_HELD_OUT  # noqa: E402
from mnemovision.vos.data import davis_sequence  # noqa: E402
from mnemovision.vos.jointformer_model import INFERENCE_KEYS  # noqa: E402
from mnemovision.vos.metrics import evaluate_sequence, summarize  # noqa: E402


JOINTFORMER_OPTIONS: dict = {}  # overrides of the settings stored in the weights file (--internal-size, --top-k)


def label(name: str) -> str:
    """The name a model's rows carry: ``LABEL`` of ``LABEL=FILE``, else the name itself."""
    return name.split("=", 1)[0]


def make_model(name: str):
    """A baseline by name, the shipped JointFormer (``jointformer-tiny``) or a JointFormer file
    (``FILE.safetensors`` or ``LABEL=FILE.safetensors``, the label naming its rows)."""
    path = name.split("=", 1)[-1]
    if name == "jointformer-tiny" or path.endswith(".safetensors"):
        return load_model(str(SHIPPED_JOINTFORMER) if name == "jointformer-tiny" else path, **JOINTFORMER_OPTIONS)
    return load_model(name)


def run_model(name: str, root: Path, sequences: list[str]) -> dict:
    scores, frames_done, seconds, adapt_seconds, settings = [], 0, 0.0, 0.0, {}
    reset_peak_rss()
    for seq_name in sequences:
        seq = davis_sequence(root, seq_name)
        model = make_model(name)
        settings = {k: getattr(model, k) for k in INFERENCE_KEYS if hasattr(model, k)}
        session = VOSSession(model)
        first = seq.frame(0)
        session.add_mask(0, seq.mask(0, first.shape[:2]))
        preds, gts = [], []
        for t in range(len(seq)):
            frame = seq.frame(t)
            start = time.perf_counter()
            preds.append(session.step(frame))
            seconds += time.perf_counter() - start
            gts.append(seq.mask(t, frame.shape[:2]))
        frames_done += len(seq)
        adapt_seconds += getattr(session.state, "adapt_seconds", 0.0)
        scores += evaluate_sequence(seq_name, np.stack(gts), np.stack(preds))
    report = summarize(scores)
    return {"model": label(name), "sequences": sequences, "J": report["J"], "F": report["F"], "JF": report["JF"], "fps": frames_done / seconds,
            "adapt_s": adapt_seconds / len(sequences), "peak_mem_mb": max_rss_mb(), "settings": settings, "per_sequence": report["per_sequence"]}


def run_long(name: str, root: Path, sequence: str, n_frames: int) -> dict:
    """Feed ``n_frames`` frames (the sequence played forwards and backwards) and record memory."""
    seq = davis_sequence(root, sequence)
    order = list(range(len(seq))) + list(range(len(seq) - 2, 0, -1))
    cache = {}
    session = VOSSession(make_model(name))
    session.add_mask(0, seq.mask(0, seq.frame(0).shape[:2]))
    samples = []
    for t in range(n_frames):
        index = order[t % len(order)]
        if index not in cache:
            cache[index] = seq.frame(index)
        session.step(cache[index])
        if (t + 1) % 100 == 0:
            state_mb = sum(obj.bank.nbytes() for obj in getattr(session.state, "objects", [])) / 2**20
            samples.append({"frame": t + 1, "rss_mb": rss_mb(), "memory_bank_mb": state_mb})
    return {"model": label(name), "frames": n_frames, "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None)
    parser.add_argument("--sequences", default=None)
    parser.add_argument("--models", default="copy-first,flow,jointformer-tiny")
    parser.add_argument("--internal-size", type=int, default=None, help="JointFormer's processing size (shorter side; default: the file's)")
    parser.add_argument("--top-k", type=int, default=None, help="JointFormer's memory keys per query (0: dense; default: the file's)")
    parser.add_argument("--adapt-steps", type=int, default=None, help="JointFormer's first-frame adaptation steps (0: none; default: the file's)")
    parser.add_argument("--adapt-seed", type=int, default=None, help="seed of the adaptation's dreamed clips (default 0)")
    parser.add_argument("--long", type=int, default=0, help="frames of the long-video memory run (0: skip)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.internal_size is not None:
        JOINTFORMER_OPTIONS["internal_size"] = args.internal_size
    if args.adapt_steps is not None:
        JOINTFORMER_OPTIONS["adapt_steps"] = args.adapt_steps
    if args.adapt_seed is not None:
        JOINTFORMER_OPTIONS["adapt_seed"] = args.adapt_seed
    if args.top_k is not None:
        JOINTFORMER_OPTIONS["top_k"] = args.top_k or None
    root = Path(args.data) if args.data else shared_data_path("vos", "davis2016")
    if root is None:
        raise SystemExit("no data: give --data or place the shared data at ../shared/data")
    sequences = args.sequences.split(",") if args.sequences else list(DAVIS16_HELD_OUT)
    models = [m for m in args.models.split(",") if m != "jointformer-tiny" or SHIPPED_JOINTFORMER.exists()]
    if len(models) < len(args.models.split(",")):
        print(f"jointformer-tiny skipped: {SHIPPED_JOINTFORMER} not found (train and export it first)")
    rows = [] if args.long else [run_model(m, root, sequences) for m in models]
    if rows:
        print_table(rows, ["model", "J", "F", "JF", "fps", "adapt_s", "peak_mem_mb"])
    long_rows = [run_long(m, root, sequences[0], args.long) for m in models] if args.long else []
    for row in long_rows:
        print(row["model"], [(s["frame"], round(s["rss_mb"]), round(s["memory_bank_mb"], 2)) for s in row["samples"]])
    write_json(args.json, {"results": rows, "long": long_rows, "device": "cpu"})


if __name__ == "__main__":
    main()
