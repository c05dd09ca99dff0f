"""mmengine model and metric for super-resolution: an SR network trained with L1, scored exactly as
BasicSR scores it (uint8 rounding, crop border = scale, PSNR / SSIM on the BT.601 Y channel)."""

from __future__ import annotations

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel

from mnemovision.sr.data import to_uint8
from mnemovision.sr.models import build_sr_model
from mnemovision.vision.metrics import image_psnr, image_ssim


class SRModel(BaseModel):
    """Wraps ``build_sr_model(arch, size, scale)``; the network is ``self.net``.

    ``forward(inputs [B, 3, h, w], data_samples, mode)``: ``loss`` -> {"loss": L1} with HR targets
    [B, 3, s*h, s*w]; ``predict`` -> [{"pred", "gt", "name"}] with data_samples {"gt", "name"};
    ``tensor`` -> the SR batch.
    """

    def __init__(self, arch: str = "edsr", size: str = "baseline", scale: int = 2, data_preprocessor: dict | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        self.arch, self.size, self.scale = arch, size, scale
        self.net = build_sr_model(arch, size, scale)

    def forward(self, inputs: torch.Tensor, data_samples=None, mode: str = "tensor"):
        out = self.net(inputs)
        if mode == "tensor":
            return out
        if data_samples is None:
            raise ValueError(f"mode={mode!r} needs data_samples")
        if mode == "loss":
            return {"loss": torch.nn.functional.l1_loss(out, data_samples)}
        if mode == "predict":
            return [{"pred": o, "gt": g, "name": n} for o, g, n in zip(out, data_samples["gt"], data_samples["name"])]
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', got {mode!r}")


class SRMetric(BaseMetric):
    """Mean PSNR-Y and SSIM-Y over a benchmark folder, BasicSR convention."""

    default_prefix = "sr"

    def __init__(self, scale: int = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scale = scale

    def process(self, data_batch, data_samples) -> None:
        for sample in data_samples:
            pred, gt = to_uint8(sample["pred"]), to_uint8(sample["gt"])
            self.results.append((image_psnr(pred, gt, crop_border=self.scale, y_channel=True), image_ssim(pred, gt, crop_border=self.scale, y_channel=True)))

    def compute_metrics(self, results: list) -> dict:
        arr = np.asarray(results, dtype=np.float64)
        return {"psnr_y": float(arr[:, 0].mean()), "ssim_y": float(arr[:, 1].mean())}
