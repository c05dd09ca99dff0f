"""DAVIS-format video folders: ``JPEGImages/<seq>/*.jpg`` (or ``JPEGImages/480p/<seq>``) and
``Annotations/<seq>/*.png`` (binary or palette-indexed, several objects; YouTube-VOS style folders
annotate only some frames, objects first appearing later), and results written as palette PNGs."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnemovision.vision.io import read_image, read_mask, write_mask

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


def _resolution_dir(folder: Path) -> Path:
    """``folder/480p`` when the DAVIS release layout has it, else ``folder``."""
    return folder / "480p" if (folder / "480p").is_dir() else folder


@dataclass
class Sequence:
    """One video: frame files in order, and the annotation files it has (frame index -> path)."""

    name: str
    frames: list[Path]
    annotations: dict[int, Path]

    def __len__(self) -> int:
        return len(self.frames)

    def frame(self, index: int) -> np.ndarray:
        """[H, W, 3] uint8."""
        return read_image(self.frames[index])

    def mask(self, index: int, shape: tuple[int, int] | None = None) -> np.ndarray:
        """The annotation of frame ``index`` as [H, W] uint8 ids (KeyError when it has none). A mask
        whose size differs from ``shape`` (the frame's) is resized to it (nearest) with a warning:
        real prompt files are sometimes a pixel off."""
        mask = read_mask(self.annotations[index])
        if shape is not None and mask.shape != tuple(shape):
            import cv2

            warnings.warn(f"{self.annotations[index]}: mask is {mask.shape[1]}x{mask.shape[0]}, its frame {shape[1]}x{shape[0]}; resized (nearest)", stacklevel=2)
            mask = cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
        return mask


def frame_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(f"{folder}: no frames ({', '.join(FRAME_SUFFIXES)})")
    return files


def load_sequence(frames_dir: str | Path, masks_dir: str | Path | None, name: str | None = None) -> Sequence:
    """A sequence from a folder of frames and a folder of masks named like the frames (``00000.png``
    for ``00000.jpg``); masks of frames that do not exist are an error."""
    frames = frame_files(Path(frames_dir))
    stems = {p.stem: i for i, p in enumerate(frames)}
    annotations: dict[int, Path] = {}
    if masks_dir is not None and Path(masks_dir).is_dir():
        for mask in sorted(Path(masks_dir).glob("*.png")):
            if mask.stem not in stems:
                raise FileNotFoundError(f"{mask}: no frame named {mask.stem} in {frames_dir}")
            annotations[stems[mask.stem]] = mask
    return Sequence(name or Path(frames_dir).name, frames, annotations)


def list_sequences(root: str | Path) -> list[str]:
    """Sequence names of a DAVIS-format root (``JPEGImages/[480p/]<seq>``)."""
    images = _resolution_dir(Path(root) / "JPEGImages")
    if not images.is_dir():
        raise FileNotFoundError(f"{root}: no JPEGImages folder (DAVIS layout: JPEGImages/<seq>/*.jpg, Annotations/<seq>/*.png)")
    return sorted(p.name for p in images.iterdir() if p.is_dir())


def davis_sequence(root: str | Path, name: str) -> Sequence:
    root = Path(root)
    return load_sequence(_resolution_dir(root / "JPEGImages") / name, _resolution_dir(root / "Annotations") / name, name)


def read_masks(folder: Path, names: list[str], shape: tuple[int, int]) -> np.ndarray:
    """[T, H, W] uint8 from ``folder/<name>.png`` for each name; a missing file is an error naming it."""
    out = np.zeros((len(names), *shape), dtype=np.uint8)
    for t, name in enumerate(names):
        path = folder / f"{name}.png"
        if not path.exists():
            raise FileNotFoundError(f"{path}: mask missing (every frame needs one)")
        out[t] = read_mask(path, expected_shape=shape)
    return out


def write_masks(folder: str | Path, names: list[str], masks: np.ndarray) -> None:
    """``folder/<name>.png`` DAVIS-palette PNGs of [T, H, W] uint8 ids."""
    folder = Path(folder)
    for name, mask in zip(names, masks):
        write_mask(folder / f"{name}.png", mask)
