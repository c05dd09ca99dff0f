"""What applications (CLI, demo tab, scripts) use: an upscaler from a model file, the shipped pruned
model or plain bicubic, and BasicSR-exact scoring of a folder.

    from mnemovision.sr import api
    up = api.load_upscaler("shipped", scale=2)          # ISS-P 90%-sparse EDSR-baseline x2
    sr = up(lr)                                         # uint8 [h, w, 3] -> uint8 [2h, 2w, 3]
    report = api.evaluate_folder(up, "Set5", scale=2)   # {"psnr_y", "ssim_y", "per_image"}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mnemovision.sr.data import as_rgb_uint8, benchmark_pairs, to_tensor, to_uint8
from mnemovision.vision.checks import check_int, check_real
from mnemovision.vision.metrics import image_psnr, image_ssim
from mnemovision.vision.resize import imresize

WEIGHTS = Path(__file__).resolve().parent / "weights"
SHIPPED = {  # written by ``bench/sr.py --ship`` with the shipped CPU recipe
    "shipped": WEIGHTS / "edsr_baseline_x2_issp90.safetensors",  # ISS-P, 90% sparse, compressed
    "shipped-dense": WEIGHTS / "edsr_baseline_x2_dense_fp16.safetensors",  # the dense model, float16
}
MAX_BICUBIC_SCALE = 16  # beyond it a typo such as x20000000 would take all memory before failing


@dataclass
class Upscaler:
    """``up(lr)``: [h, w, 3] (or grey / RGBA) uint8 -> [scale*h, scale*w, 3] uint8."""

    scale: int
    name: str
    net: torch.nn.Module | None = None  # None: MATLAB-compatible bicubic
    meta: dict = field(default_factory=dict)

    @torch.no_grad()
    def __call__(self, lr: np.ndarray, source: str = "input image") -> np.ndarray:
        lr = as_rgb_uint8(lr, source)
        if self.net is None:
            return imresize(lr, self.scale)
        return to_uint8(self.net(to_tensor(lr)[None])[0])


def load_upscaler(model: str | Path = "shipped", scale: int | None = None, sparse: bool = False) -> Upscaler:
    """``model``: ``bicubic``, ``shipped`` (the packaged ISS-P x2 model), ``shipped-dense`` (the
    packaged dense x2 model, float16) or a file written by ``save_sr_model``. ``scale`` must match
    the model's (required for bicubic, at most ``MAX_BICUBIC_SCALE``). ``sparse`` runs
    pruned convolutions through CSR matrices.

    Raises:
        ValueError: a scale that is not a positive int, or that the model does not have.
        FileNotFoundError: a missing model file.
    """
    if scale is not None:
        check_int("scale", scale, 1)
    if str(model) == "bicubic":
        if scale is None or scale > MAX_BICUBIC_SCALE:
            raise ValueError(f"bicubic needs a scale from 1 to {MAX_BICUBIC_SCALE} (SR benchmarks use 2, 3, 4 and 8), got {scale}")
        return Upscaler(int(scale), "bicubic")
    from mnemovision.sr.export import load_sr_model, to_sparse_inference

    path = SHIPPED.get(str(model), Path(model))
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model file" + (" (the shipped models are written by bench/sr.py --ship)" if str(model) in SHIPPED else ""))
    net, meta = load_sr_model(path)
    model_scale = int(meta["scale"])
    if scale is not None and int(scale) != model_scale:
        raise ValueError(f"{path}: the model upscales x{model_scale}, asked for x{scale}")
    if sparse:
        to_sparse_inference(net)
    return Upscaler(model_scale, f"{meta.get('arch')}-{meta.get('size')} x{model_scale} {meta.get('method')} ({float(meta.get('sparsity', 0)):.0%} sparse)", net, meta)


def pruned_further(upscaler: Upscaler, sparsity: float) -> Upscaler:
    """A copy of ``upscaler`` with each layer one-shot magnitude-pruned to ``sparsity`` (no
    fine-tuning): what more pruning would cost. Layers already sparser are left as they are."""
    import copy

    from mnemovision.sr.pruning import prunable_weights, smallest_fraction

    if upscaler.net is None:
        raise ValueError("bicubic has no weights to prune")
    check_real("sparsity", sparsity, 0, 1, high_open=True)
    net = copy.deepcopy(upscaler.net)
    with torch.no_grad():
        for weight in prunable_weights(net).values():
            if float((weight == 0).float().mean()) < sparsity:
                weight.mul_(~smallest_fraction(weight, sparsity))
    return Upscaler(upscaler.scale, f"{upscaler.name.split(' (')[0]} pruned to {sparsity:.0%} (no fine-tuning)", net, dict(upscaler.meta))


def evaluate_folder(upscaler: Upscaler, folder: str | Path, scale: int | None = None) -> dict:
    """PSNR-Y / SSIM-Y (BasicSR: uint8, crop border = scale, BT.601 Y) over a benchmark folder."""
    scale = scale or upscaler.scale
    if scale != upscaler.scale:
        raise ValueError(f"{upscaler.name} upscales x{upscaler.scale}, asked to score x{scale}")
    per_image = {}
    for name, lr, gt in benchmark_pairs(folder, scale):
        sr = upscaler(lr, name)
        per_image[name] = {"psnr_y": image_psnr(sr, gt, crop_border=scale, y_channel=True), "ssim_y": image_ssim(sr, gt, crop_border=scale, y_channel=True)}
    return {
        "model": upscaler.name,
        "scale": scale,
        "psnr_y": float(np.mean([v["psnr_y"] for v in per_image.values()])),
        "ssim_y": float(np.mean([v["ssim_y"] for v in per_image.values()])),
        "per_image": per_image,
    }
