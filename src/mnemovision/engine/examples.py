"""A small real training task for the engine: denoising patches of real photographs.

It exercises every part of a training run (dataset, model with ``forward(mode=...)``, metric,
checkpoints, resume, DDP) in seconds on a CPU, and is what the engine's tests and the
``denoise_tiny`` config train. The photographs are the ones scikit-image ships (no download).
"""

from __future__ import annotations

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from torch import nn
from torch.utils.data import Dataset

from mnemovision.vision.metrics import psnr

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")


def load_photo(name: str) -> np.ndarray:
    """One of scikit-image's bundled RGB photographs as float32 [H, W, 3] in [0, 1]."""
    import skimage.data

    if name not in PHOTOS:
        raise ValueError(f"photo must be one of {PHOTOS}, got {name!r}")
    return getattr(skimage.data, name)().astype(np.float32) / 255.0


class PatchDenoiseDataset(Dataset):
    """Noisy/clean patch pairs cut from real photographs; sample ``i`` is a pure function of (seed, i).

    Args:
        photos: scikit-image photograph names. split: ``train`` uses the left 3/4 of each photo,
            ``val`` the right 1/4, so the two never share pixels.
        length: samples per epoch. patch: patch side in pixels. sigma: noise std on [0, 1] images.
    """

    def __init__(self, photos: tuple[str, ...] = PHOTOS, split: str = "train", length: int = 256, patch: int = 32, sigma: float = 0.1, seed: int = 0) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        self.split, self.length, self.patch, self.sigma, self.seed = split, length, patch, sigma, seed
        self.images = []
        for name in photos:
            img = load_photo(name)
            cut = img.shape[1] * 3 // 4
            self.images.append(img[:, :cut] if split == "train" else img[:, cut:])
        self.metainfo = {"task": "denoise", "photos": list(photos), "split": split}

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng((self.seed, 0 if self.split == "train" else 1, index))
        img = self.images[int(rng.integers(len(self.images)))]
        y = int(rng.integers(img.shape[0] - self.patch + 1))
        x = int(rng.integers(img.shape[1] - self.patch + 1))
        clean = torch.from_numpy(np.ascontiguousarray(img[y : y + self.patch, x : x + self.patch].transpose(2, 0, 1)))
        noise = torch.from_numpy(rng.standard_normal(clean.shape).astype(np.float32)) * self.sigma
        return {"inputs": clean + noise, "data_samples": clean}


class TinyDenoiser(BaseModel):
    """Residual CNN denoiser: ``out = x + f(x)`` with ``depth`` 3x3 conv layers of ``channels`` width."""

    def __init__(self, channels: int = 16, depth: int = 3, data_preprocessor: dict | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()]
        layers.append(nn.Conv2d(channels, 3, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, inputs: torch.Tensor, data_samples: torch.Tensor | None = None, mode: str = "tensor"):
        """inputs: [B, 3, H, W] noisy; data_samples: [B, 3, H, W] clean (for ``loss``/``predict``)."""
        out = inputs + self.body(inputs)
        if mode == "tensor":
            return out
        if data_samples is None:
            raise ValueError(f"mode={mode!r} needs data_samples (the clean images)")
        if mode == "loss":
            return {"loss": torch.mean((out - data_samples) ** 2)}
        if mode == "predict":
            return [{"pred": o.detach(), "gt": g, "noisy": i} for o, g, i in zip(out, data_samples, inputs)]
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', got {mode!r}")


class DenoisePSNR(BaseMetric):
    """Mean PSNR (dB, [0, 1] range) of the denoised patches and of the noisy inputs, over a split."""

    default_prefix = "denoise"

    def process(self, data_batch, data_samples) -> None:
        for sample in data_samples:
            pred = sample["pred"].clamp(0, 1)
            self.results.append((float(psnr(pred, sample["gt"])), float(psnr(sample["noisy"].clamp(0, 1), sample["gt"]))))

    def compute_metrics(self, results: list) -> dict:
        arr = np.asarray(results, dtype=np.float64)
        return {"psnr": float(arr[:, 0].mean()), "psnr_noisy": float(arr[:, 1].mean())}
