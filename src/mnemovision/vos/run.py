"""Running a model over sequence folders and writing what people look at: palette PNG masks named
like the frames and an overlay MP4 per sequence."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnemovision.vision.io import overlay_mask, write_video
from mnemovision.vos.api import VOSModel, VOSSession
from mnemovision.vos.data import Sequence, load_sequence, write_masks


def run_sequence(model: VOSModel, seq: Sequence, out_dir: str | Path | None = None, fps: float = 24.0) -> np.ndarray:
    """Segment ``seq`` from its annotations: at each annotated frame, the objects not seen before are
    added (the first frame's objects on DAVIS; later ones on YouTube-VOS style data). Returns
    [T, H, W] uint8 ids; with ``out_dir``, writes ``<out>/<seq>/<frame>.png`` and ``<out>/<seq>.mp4``."""
    if not seq.annotations:
        raise FileNotFoundError(f"{seq.name}: no annotation masks to start from")
    session = VOSSession(model)
    masks, overlays = [], []
    for t in range(len(seq)):
        frame = seq.frame(t)
        if t in seq.annotations:
            given = seq.mask(t, frame.shape[:2])
            new_ids = [int(i) for i in np.unique(given) if i not in (0, 255) and int(i) not in session.object_ids]
            if new_ids:
                session.add_mask(t, np.where(given == 255, 0, given), new_ids)
        ids = session.step(frame)
        masks.append(ids)
        if out_dir is not None:
            overlays.append(overlay_mask(frame, ids))
    masks_arr = np.stack(masks)
    if out_dir is not None:
        out_dir = Path(out_dir)
        write_masks(out_dir / seq.name, [p.stem for p in seq.frames], masks_arr)
        write_video(out_dir / f"{seq.name}.mp4", overlays, fps=fps)
    return masks_arr


def sequences_in(frames_dir: str | Path, masks_dir: str | Path) -> list[Sequence]:
    """One sequence when ``frames_dir`` holds frames; one per subfolder when it holds folders."""
    frames_dir, masks_dir = Path(frames_dir), Path(masks_dir)
    subdirs = sorted(p for p in frames_dir.iterdir() if p.is_dir()) if frames_dir.is_dir() else []
    if subdirs:
        return [load_sequence(d, masks_dir / d.name, d.name) for d in subdirs]
    return [load_sequence(frames_dir, masks_dir)]
