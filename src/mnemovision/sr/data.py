"""Super-resolution data: training patches cut from HR photographs with their MATLAB-bicubic LR, and
benchmark folders (``HR/`` plus optional ``LR_bicubic/X<s>/<name>x<s>.png``, as Set5 ships).

Training LR is made from each whole (mod-cropped) HR image once, exactly like the benchmarks' LR
files, and patches are cut at aligned positions (LR (y, x) <-> HR (s*y, s*x)), so a patch pair is
what the benchmark protocol would give for that region. Sample ``i`` is a pure function of
(seed, i): crops, flips and 90-degree rotations are drawn from ``default_rng((seed, i))``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mnemovision.vision.checks import check_int
from mnemovision.vision.io import read_image
from mnemovision.vision.photos import as_rgb_uint8, skimage_photos
from mnemovision.vision.resize import bicubic_lr

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def folder_images(folder: str | Path) -> list[tuple[str, np.ndarray]]:
    """(file name, [H, W, 3] uint8) for every image file in ``folder`` (sorted by name)."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return [(p.name, as_rgb_uint8(read_image(p, mode="keep"), str(p))) for p in files]


def paired_lr(lr_dir: Path, name: str, hr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """The LR image of HR ``name`` in ``lr_dir`` (``<stem>x<s>.png`` or ``name``) and HR cropped to it.

    Raises:
        FileNotFoundError: no LR file for ``name``. ValueError: an LR larger than HR / scale.
    """
    stem = Path(name).stem
    candidates = [lr_dir / f"{stem}x{scale}.png", lr_dir / name]
    lr_file = next((c for c in candidates if c.exists()), None)
    if lr_file is None:
        raise FileNotFoundError(f"{lr_dir}: no LR image for {name} (looked for {', '.join(c.name for c in candidates)})")
    lr = as_rgb_uint8(read_image(lr_file, mode="keep"), str(lr_file))
    if lr.shape[0] * scale > hr.shape[0] or lr.shape[1] * scale > hr.shape[1]:
        raise ValueError(f"{lr_file}: {lr.shape[1]}x{lr.shape[0]} LR is larger than its HR {hr.shape[1]}x{hr.shape[0]} / {scale}")
    return lr, hr[: lr.shape[0] * scale, : lr.shape[1] * scale]


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """[H, W, 3] uint8 -> [3, H, W] float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """[3, H, W] float in [0, 1] -> [H, W, 3] uint8, clamped and rounded (BasicSR's tensor2img)."""
    return (image.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)


class SRPatches(Dataset):
    """Random (LR, HR) patch pairs for training: ``{"inputs": [3, p, p], "data_samples": [3, s*p, s*p]}``.

    Args:
        scale: 2, 3 or 4. patch: LR patch side. length: samples per epoch.
        images: a folder of HR photographs, or None for scikit-image's bundled photographs.
        lr_images: a folder of matching LR images (``<stem>x<s>.png`` or the HR file's name), for
            paired data; None makes LR from HR with MATLAB bicubic.
    """

    def __init__(self, scale: int = 2, patch: int = 24, length: int = 1000, images: str | None = None, lr_images: str | None = None, seed: int = 0) -> None:
        for name, value in (("scale", scale), ("patch", patch), ("length", length)):
            check_int(f"SRPatches.{name}", value, 1)
        self.scale, self.patch, self.length, self.seed = scale, patch, length, check_int("SRPatches.seed", seed, 0)
        named = skimage_photos() if images is None else folder_images(images)
        self.pairs = []
        for name, hr in named:
            if min(hr.shape[:2]) < scale * patch:
                continue  # too small for one patch
            lr, gt = paired_lr(Path(lr_images), name, hr, scale) if lr_images else bicubic_lr(hr, scale)
            if min(lr.shape[:2]) >= patch:
                self.pairs.append((lr, gt))
        if not self.pairs:
            raise ValueError(f"no training image is at least {scale * patch} pixels on each side")
        self.metainfo = {"scale": scale, "patch": patch, "images": [n for n, _ in named]}

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng((self.seed, index))
        lr, hr = self.pairs[int(rng.integers(len(self.pairs)))]
        p, s = self.patch, self.scale
        y, x = int(rng.integers(lr.shape[0] - p + 1)), int(rng.integers(lr.shape[1] - p + 1))
        lr_patch, hr_patch = lr[y : y + p, x : x + p], hr[s * y : s * (y + p), s * x : s * (x + p)]
        flip, transpose, rot = rng.integers(2, size=3)
        if flip:
            lr_patch, hr_patch = lr_patch[:, ::-1], hr_patch[:, ::-1]
        if rot:
            lr_patch, hr_patch = lr_patch[::-1], hr_patch[::-1]
        if transpose:
            lr_patch, hr_patch = lr_patch.transpose(1, 0, 2), hr_patch.transpose(1, 0, 2)
        return {"inputs": to_tensor(lr_patch), "data_samples": to_tensor(hr_patch)}


def benchmark_pairs(folder: str | Path, scale: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, LR [h, w, 3], GT [s*h, s*w, 3]) uint8 for a benchmark folder.

    ``folder`` holds ``HR/`` (or the HR images directly); LR comes from ``LR_bicubic/X<s>/<stem>x<s>.png``
    when present, else from MATLAB-bicubic downscaling; GT is HR cropped to LR size x scale (BasicSR).

    Raises:
        ValueError: an LR file whose size does not match its HR image at this scale.
    """
    check_int("scale", scale, 1)
    folder = Path(folder)
    hr_dir = folder / "HR" if (folder / "HR").is_dir() else folder
    out = []
    for name, hr in folder_images(hr_dir):
        lr_dir = folder / "LR_bicubic" / f"X{scale}"
        if (lr_dir / f"{Path(name).stem}x{scale}.png").exists():
            lr, gt = paired_lr(lr_dir, name, hr, scale)
        else:
            try:
                lr, gt = bicubic_lr(hr, scale)
            except ValueError as err:
                raise ValueError(f"{hr_dir / name}: {err}") from err
        out.append((name, lr, gt))
    return out


def resolve_benchmark(folder: str | Path | None, default: str = "sr/Set5") -> Path:
    """``folder`` as given, or ``<shared data>/<default>`` when None (``$MNEMOVISION_DATA`` or
    ``../shared/data``)."""
    if folder is not None:
        return Path(folder)
    from mnemovision.vision.data import shared_data_path

    path = shared_data_path(*default.split("/"))
    if path is None:
        raise FileNotFoundError(f"benchmark folder not given and {default} not found in the shared data (set $MNEMOVISION_DATA, or give the folder)")
    return path


class SRBenchmark(Dataset):
    """Whole benchmark images: ``{"inputs": LR [3, h, w], "data_samples": {"gt": [3, s*h, s*w], "name"}}``.

    ``folder`` None means Set5 from the shared data."""

    def __init__(self, folder: str | None = None, scale: int = 2) -> None:
        self.scale = scale
        folder = resolve_benchmark(folder)
        self.items = benchmark_pairs(folder, scale)
        self.metainfo = {"folder": str(folder), "scale": scale, "images": [n for n, _, _ in self.items]}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        name, lr, gt = self.items[index]
        return {"inputs": to_tensor(lr), "data_samples": {"gt": to_tensor(gt), "name": name}}
