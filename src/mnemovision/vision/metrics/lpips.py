"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric").

The distance between two images is the sum over backbone layers of the spatially averaged,
channel-weighted squared difference of unit-normalised activations. Weights never download: build
with ``LPIPS.from_pretrained(lin_path, backbone_path)`` where

- ``lin_path`` is the linear-layer file in the official layout (``lin{i}.model.1.weight``, shape
  [1, C_i, 1, 1]), e.g. ``weights/v0.1/alex.pth`` of the ``lpips`` package, and
- ``backbone_path`` is the torchvision ImageNet checkpoint of the backbone (``features.*`` and
  ``classifier.*`` keys of ``torchvision.models.alexnet`` or ``vgg16``).

Images are [B, 3, H, W] in [0, 1] (``normalize=True``, the default) or [-1, 1].
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from mnemovision.vision.checkpoints import load_checkpoint, load_state_dict_strict

# backbone -> indices in torchvision's ``features`` after which activations are taken (ReLU outputs)
_TAPS = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}
# Input normalisation of the original LPIPS release ("ScalingLayer"), for inputs in [-1, 1].
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def _torchvision_backbone(net: str) -> nn.Module:
    from torchvision import models

    if net == "alex":
        return models.alexnet(weights=None)
    if net == "vgg":
        return models.vgg16(weights=None)
    raise ValueError(f"net must be one of {sorted(_TAPS)}, got {net!r}")


class LPIPS(nn.Module):
    """LPIPS distance module; construct through ``from_pretrained`` (random weights otherwise)."""

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        backbone = _torchvision_backbone(net)
        taps = _TAPS[net]
        self.net = net
        self.taps = taps
        self.features = backbone.features[: taps[-1] + 1]
        channels = [self.features[i - 1].out_channels for i in taps]
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in channels)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_pretrained(cls, lin_path: str | os.PathLike | None, backbone_path: str | os.PathLike | None, net: str = "alex") -> "LPIPS":
        """Load LPIPS from two local files (see the module docstring); strict on both.

        Raises:
            FileNotFoundError: a path is None or missing; the message says which file is needed.
            CheckpointError: a file does not match the expected key layout.
        """
        for name, value, what in (
            ("lin_path", lin_path, f"the LPIPS linear layers (the lpips package's weights/v0.1/{net}.pth)"),
            ("backbone_path", backbone_path, f"torchvision's ImageNet {'alexnet' if net == 'alex' else 'vgg16'} weights"),
        ):
            if value is None or not Path(value).exists():
                raise FileNotFoundError(f"LPIPS needs local weights: {name}={value!r} must point to {what}; mnemovision never downloads weights")
        model = cls(net)
        backbone = _torchvision_backbone(net)
        load_state_dict_strict(backbone, load_checkpoint(backbone_path), source=str(backbone_path))
        model.features.load_state_dict(backbone.features[: model.taps[-1] + 1].state_dict())
        lin_state = load_checkpoint(lin_path)
        converted = {f"lins.{i}.weight": lin_state.get(f"lin{i}.model.1.weight") for i in range(len(model.lins))}
        missing = [f"lin{i}.model.1.weight" for i, v in enumerate(converted.values()) if v is None]
        extra = sorted(set(lin_state) - {f"lin{i}.model.1.weight" for i in range(len(model.lins))})
        if missing or extra:
            from mnemovision.vision.errors import CheckpointError

            raise CheckpointError(f"{lin_path}: LPIPS linear layers: missing keys {missing}, unexpected keys {extra}")
        load_state_dict_strict(model.lins, {k.removeprefix("lins."): v for k, v in converted.items()}, source=str(lin_path))
        return model

    def forward(self, pred: torch.Tensor, target: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """LPIPS distance of [B, 3, H, W] image pairs -> [B] (0 for identical images)."""
        if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
            raise ValueError(f"pred and target must both be [B, 3, H, W], got {tuple(pred.shape)} and {tuple(target.shape)}")
        if normalize:
            pred, target = pred * 2.0 - 1.0, target * 2.0 - 1.0
        total = pred.new_zeros(pred.shape[0])
        feats = []
        for image in (pred, target):
            x = (image - self.shift) / self.scale
            taken = []
            for index, layer in enumerate(self.features):
                x = layer(x)
                if index in self.taps:
                    taken.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
            feats.append(taken)
        for lin, a, b in zip(self.lins, *feats):
            total = total + lin((a - b) ** 2).mean(dim=(1, 2, 3))
        return total
