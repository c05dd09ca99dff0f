"""DAVIS semi-supervised evaluation, computed as the official davis2017-evaluation toolkit does.

- J (region similarity): |P & G| / |P | G| per object and frame; 1 when both are empty.
- F (boundary F-measure): one-pixel boundaries by D. Martin's ``seg2bmap``; each dilated by a disk of
  radius ``ceil(0.008 * image diagonal)`` (8 px at 854x480; OpenCV dilation, borders as background);
  precision |B_P & dil(B_G)| / |B_P|, recall |B_G & dil(B_P)| / |B_G|, with the toolkit's rules for
  empty boundaries; F = 2PR / (P + R), 0 when P + R = 0.
- Per object: mean (nanmean over frames), recall (fraction of frames above 0.5) and decay (mean of the
  first quarter of the frames minus the last, with the toolkit's bins, uint8 cast included).
- Protocol: objects are the ids of the first ground-truth frame; ground-truth 255 (void) counts as
  background; predicted ids are one-hot expanded and zero-padded to that count (more ids is an
  error); the first and last frames are dropped. Global J and F are means over all objects of all
  sequences; J&F is their mean.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnemovision.vision.checks import check_real
from mnemovision.vision.io import mask_ids, read_mask
from mnemovision.vos.data import read_masks

BOUND_TH = 0.008


def db_eval_iou(annotation: np.ndarray, segmentation: np.ndarray) -> np.ndarray:
    """J of boolean masks [..., H, W] -> [...]; both empty gives 1."""
    annotation, segmentation = annotation.astype(bool), segmentation.astype(bool)
    inter = np.sum(annotation & segmentation, axis=(-2, -1))
    union = np.sum(annotation | segmentation, axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        j = inter / union
    return np.where(np.isclose(union, 0), 1.0, j)


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary map [H, W] bool of a mask (D. Martin's seg2bmap, as the toolkit has it)."""
    seg = seg.astype(bool)
    e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def disk(radius: float) -> np.ndarray:
    """The structuring element {(x, y): x^2 + y^2 <= r^2} on a (2r+1)^2 grid, uint8 (skimage's disk)."""
    r = int(radius)
    y, x = np.ogrid[-r : r + 1, -r : r + 1]
    return (x * x + y * y <= radius * radius).astype(np.uint8)


def boundary_radius(shape: tuple[int, int], bound_th: float = BOUND_TH) -> float:
    """Dilation radius in pixels: ``bound_th`` itself when >= 1, else ceil(bound_th * diagonal).

    A radius past the image diagonal dilates any boundary over the whole image, so it is cut there
    (the same F, without a disk as large as the radius).

    Raises:
        ValueError: ``bound_th`` negative, NaN or infinite.
    """
    bound_th = check_real("bound_th", bound_th, 0)
    diagonal = math.hypot(*shape)
    radius = bound_th if bound_th >= 1 else float(math.ceil(bound_th * diagonal))
    return min(radius, float(math.ceil(diagonal)))


def f_measure(segmentation: np.ndarray, annotation: np.ndarray, bound_th: float = BOUND_TH) -> float:
    """Boundary F-measure of one predicted and one ground-truth mask [H, W]."""
    import cv2

    kernel = disk(boundary_radius(annotation.shape, bound_th))
    fg_b, gt_b = seg2bmap(segmentation), seg2bmap(annotation)
    fg_dil = cv2.dilate(fg_b.astype(np.uint8), kernel).astype(bool)
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), kernel).astype(bool)
    n_fg, n_gt = int(fg_b.sum()), int(gt_b.sum())
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision, recall = float((fg_b & gt_dil).sum()) / n_fg, float((gt_b & fg_dil).sum()) / n_gt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def db_eval_boundary(annotation: np.ndarray, segmentation: np.ndarray, bound_th: float = BOUND_TH) -> np.ndarray:
    """F per frame of [T, H, W] masks -> [T]."""
    return np.array([f_measure(s, a, bound_th) for a, s in zip(annotation, segmentation)], dtype=np.float64)


def db_statistics(values: np.ndarray) -> tuple[float, float, float]:
    """(mean, recall, decay) of one object's per-frame J or F, as the toolkit computes them."""
    values = np.asarray(values, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = float(np.nanmean(values))
        recall = float(np.nanmean(values > 0.5))
        ids = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(np.uint8)  # the toolkit's uint8 cast
        bins = [values[ids[i] : ids[i + 1] + 1] for i in range(4)]
        decay = float(np.nanmean(bins[0]) - np.nanmean(bins[3]))
    return mean, recall, decay


@dataclass
class ObjectScore:
    """One object of one sequence: per-frame J and F (first and last frames dropped) and statistics."""

    sequence: str
    object_id: int
    j: np.ndarray
    f: np.ndarray

    @property
    def j_stats(self) -> tuple[float, float, float]:
        return db_statistics(self.j)

    @property
    def f_stats(self) -> tuple[float, float, float]:
        return db_statistics(self.f)


def one_hot(masks: np.ndarray, n_objects: int) -> np.ndarray:
    """[T, H, W] indices -> [n_objects, T, H, W] bool (ids 1..n_objects)."""
    return np.arange(1, n_objects + 1)[:, None, None, None] == masks[None]


def _index_masks(name: str, role: str, masks) -> np.ndarray:
    """``masks`` as [T, H, W] uint8 ids; ValueError naming the sequence and role otherwise."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"{name}: {role} masks must be [T, H, W] ids, got shape {list(masks.shape)}")
    try:
        return np.stack([mask_ids(frame) for frame in masks]) if len(masks) else masks.astype(np.uint8)
    except ValueError as err:
        raise ValueError(f"{name}: {role} {err}") from None


def evaluate_sequence(name: str, gt: np.ndarray, pred: np.ndarray, bound_th: float = BOUND_TH) -> list[ObjectScore]:
    """Scores of every object of one sequence; ``gt`` and ``pred`` are [T, H, W] uint8 index masks.

    Raises:
        ValueError: masks not [T, H, W] whole-number ids in 0..255 (fractional or negative ids would
            silently match no object), shapes differ, fewer than 3 frames, or the prediction has more
            objects than the first ground-truth frame.
    """
    gt, pred = _index_masks(name, "ground-truth", gt), _index_masks(name, "prediction", pred)
    if gt.shape != pred.shape:
        raise ValueError(f"{name}: prediction masks {list(pred.shape)} and ground truth {list(gt.shape)} differ in shape")
    if gt.shape[0] < 3:
        raise ValueError(f"{name}: {gt.shape[0]} frames; the protocol drops the first and last, so at least 3 are needed")
    gt = np.where(gt == 255, 0, gt)
    n_objects = int(gt[0].max())
    n_pred = int(pred.max())
    if n_pred > n_objects:
        raise ValueError(f"{name}: the prediction has object id {n_pred}, the first ground-truth frame only {n_objects} objects")
    gt_oh, pred_oh = one_hot(gt, n_objects)[:, 1:-1], one_hot(pred, n_objects)[:, 1:-1]
    return [ObjectScore(name, i + 1, db_eval_iou(gt_oh[i], pred_oh[i]), db_eval_boundary(gt_oh[i], pred_oh[i], bound_th)) for i in range(n_objects)]


def summarize(scores: list[ObjectScore]) -> dict:
    """Global J, F, J&F (means over all objects) with recall and decay, plus per-sequence and per-object rows."""
    if not scores:
        raise ValueError("no objects to summarize")
    j = np.array([s.j_stats for s in scores])
    f = np.array([s.f_stats for s in scores])
    per_sequence: dict[str, dict] = {}
    for s, js, fs in zip(scores, j, f):
        per_sequence.setdefault(s.sequence, {"J": [], "F": []})
        per_sequence[s.sequence]["J"].append(js[0])
        per_sequence[s.sequence]["F"].append(fs[0])
    return {
        "JF": float((j[:, 0].mean() + f[:, 0].mean()) / 2),
        "J": float(j[:, 0].mean()), "J_recall": float(j[:, 1].mean()), "J_decay": float(j[:, 2].mean()),
        "F": float(f[:, 0].mean()), "F_recall": float(f[:, 1].mean()), "F_decay": float(f[:, 2].mean()),
        "per_sequence": {k: {"J": float(np.mean(v["J"])), "F": float(np.mean(v["F"]))} for k, v in per_sequence.items()},
        "per_object": {
            f"{s.sequence}_{s.object_id}": {"J": js[0], "J_recall": js[1], "J_decay": js[2], "F": fs[0], "F_recall": fs[1], "F_decay": fs[2]}
            for s, js, fs in zip(scores, j.tolist(), f.tolist())
        },
    }


def evaluate_folders(pred_dir: str | Path, gt_dir: str | Path, sequences: list[str] | None = None, bound_th: float = BOUND_TH) -> dict:
    """Evaluate ``pred_dir/<seq>/<frame>.png`` against the ground truth ``gt_dir`` (a DAVIS root with
    ``Annotations/``, or a folder of ``<seq>/`` mask folders) for every sequence (or ``sequences``).

    Raises:
        FileNotFoundError: either folder, a sequence or a predicted mask missing (named).
    """
    if not Path(gt_dir).is_dir():
        raise FileNotFoundError(f"{gt_dir}: ground-truth folder not found")
    if not Path(pred_dir).is_dir():
        raise FileNotFoundError(f"{pred_dir}: prediction folder not found")
    gt_root = Path(gt_dir) / "Annotations" if (Path(gt_dir) / "Annotations").is_dir() else Path(gt_dir)
    if (gt_root / "480p").is_dir():
        gt_root = gt_root / "480p"
    names = sequences or sorted(p.name for p in gt_root.iterdir() if p.is_dir())
    if not names:
        raise FileNotFoundError(f"{gt_root}: no sequence folders")
    scores: list[ObjectScore] = []
    for seq in names:
        gt_files = sorted((gt_root / seq).glob("*.png"))
        if not gt_files:
            raise FileNotFoundError(f"{gt_root / seq}: no ground-truth masks")
        first = read_mask(gt_files[0])
        frame_names = [p.stem for p in gt_files]
        gt = read_masks(gt_root / seq, frame_names, first.shape)
        pred = read_masks(Path(pred_dir) / seq, frame_names, first.shape)
        scores.extend(evaluate_sequence(seq, gt, pred, bound_th))
    return summarize(scores)


def write_csvs(report: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """``global_results.csv`` and ``per-sequence_results.csv`` in the toolkit's column layout (each
    written atomically)."""
    import csv

    from mnemovision.vision.checkpoints import atomic_write

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    global_path, seq_path = out_dir / "global_results.csv", out_dir / "per-sequence_results.csv"
    with atomic_write(global_path, "w") as handle:
        writer = csv.writer(handle)
        writer.writerow(["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"])
        writer.writerow([f"{report[k]:.6f}" for k in ("JF", "J", "J_recall", "J_decay", "F", "F_recall", "F_decay")])
    with atomic_write(seq_path, "w") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Sequence", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"])
        for name, row in report["per_object"].items():
            writer.writerow([name] + [f"{row[k]:.6f}" for k in ("J", "J_recall", "J_decay", "F", "F_recall", "F_decay")])
    return global_path, seq_path
