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

from mnemovision.vision.io import read_image
from mnemovision.vision.resize import bicubic_lr

# scikit-image's bundled photographs that load without a download (grey ones are used as RGB).
SKIMAGE_PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
    "camera", "coins", "moon", "grass", "gravel", "brick", "clock",
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def as_rgb_uint8(image: np.ndarray, source: str) -> np.ndarray:
    """[H, W] grey, [H, W, 3] RGB or [H, W, 4] RGBA (alpha dropped) uint8 -> [H, W, 3] uint8.

    Raises:
        ValueError: another dtype or channel count (the message names ``source``).
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"{source}: expected an 8-bit image, got dtype {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=-1)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        return np.ascontiguousarray(image[..., :3])
    raise ValueError(f"{source}: expected a grey, RGB or RGBA image, got shape {list(image.shape)}")


def skimage_photos(names: tuple[str, ...] = SKIMAGE_PHOTOS) -> list[tuple[str, np.ndarray]]:
    """(name, [H, W, 3] uint8) for scikit-image's bundled photographs (no network)."""
    import skimage.data

    return [(name, as_rgb_uint8(getattr(skimage.data, name)(), f"skimage.data.{name}")) for name in names]


def folder_images(folder: str | Path) -> list[tuple[str, np.ndarray]]:
    """(file name, [H, W, 3] uint8) for every image file in ``folder`` (sorted by name)."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return [(p.name, as_rgb_uint8(read_image(p, mode="keep"), str(p))) for p in files]


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """[H, W, 3] uint8 -> [3, H, W] float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0


class SRPatches(Dataset):
    """Random (LR, HR) patch pairs for training: ``{"inputs": [3, p, p], "data_samples": [3, s*p, s*p]}``.

    Args:
        scale: 2, 3 or 4. patch: LR patch side. length: samples per epoch.
        images: a folder of photographs, or None for scikit-image's bundled photographs.
    """

    def __init__(self, scale: int = 2, patch: int = 24, length: int = 1000, images: str | None = None, seed: int = 0) -> None:
        self.scale, self.patch, self.length, self.seed = scale, patch, length, seed
        named = skimage_photos() if images is None else folder_images(images)
        self.pairs = []
        for name, hr in named:
            if min(hr.shape[:2]) < scale * patch:
                continue
            lr, gt = bicubic_lr(hr, scale)
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
    folder = Path(folder)
    hr_dir = folder / "HR" if (folder / "HR").is_dir() else folder
    out = []
    for name, hr in folder_images(hr_dir):
        lr_file = folder / "LR_bicubic" / f"X{scale}" / f"{Path(name).stem}x{scale}.png"
        if lr_file.exists():
            lr = as_rgb_uint8(read_image(lr_file, mode="keep"), str(lr_file))
            if lr.shape[0] * scale > hr.shape[0] or lr.shape[1] * scale > hr.shape[1]:
                raise ValueError(f"{lr_file}: {lr.shape[1]}x{lr.shape[0]} LR is larger than its HR {hr.shape[1]}x{hr.shape[0]} / {scale}")
            gt = hr[: lr.shape[0] * scale, : lr.shape[1] * scale]
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
