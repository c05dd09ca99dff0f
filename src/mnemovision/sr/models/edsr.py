"""EDSR (Lim et al. 2017): residual blocks without batch norm, a global skip, pixel-shuffle upsampling.

Sizes: ``baseline`` 16 blocks x 64 features (res_scale 1), ``large`` 32 x 256 (res_scale 0.1), and
``tiny`` 2 x 16 for tests. Inputs and outputs are RGB in [0, 1]; inside, images are centred on the
DIV2K mean and scaled to [0, 255] (``img_range``), as BasicSR and the official code do.

Parameter names follow BasicSR (``conv_first``, ``body.{i}.conv1/conv2``, ``conv_after_body``,
``upsample.{j}``, ``conv_last``); ``convert_official_edsr`` maps the official EDSR-PyTorch layout
(``head.0``, ``body.{i}.body.{0,2}``, ``body.{n}``, ``tail.0.{j}``, ``tail.1``, ``sub_mean``/``add_mean``).
"""

from __future__ import annotations

import math
import re

import torch
from torch import nn

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)
SIZES = {"tiny": (2, 16, 1.0), "baseline": (16, 64, 1.0), "large": (32, 256, 0.1)}


class ResidualBlock(nn.Module):
    """x + res_scale * conv(relu(conv(x)))."""

    def __init__(self, features: int, res_scale: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.conv2(torch.relu(self.conv1(x)))


def pixel_shuffle_upsampler(features: int, scale: int) -> nn.Sequential:
    """conv + PixelShuffle(2) per factor of 2 (scale 2, 4, 8), or one conv + PixelShuffle(3)."""
    layers: list[nn.Module] = []
    if scale & (scale - 1) == 0:
        for _ in range(int(math.log2(scale))):
            layers += [nn.Conv2d(features, 4 * features, 3, padding=1), nn.PixelShuffle(2)]
    elif scale == 3:
        layers += [nn.Conv2d(features, 9 * features, 3, padding=1), nn.PixelShuffle(3)]
    else:
        raise ValueError(f"scale must be 2, 3, 4 or 8, got {scale}")
    return nn.Sequential(*layers)


class EDSR(nn.Module):
    """EDSR: [B, 3, h, w] in [0, 1] -> [B, 3, scale*h, scale*w]."""

    def __init__(self, scale: int = 2, num_blocks: int = 16, features: int = 64, res_scale: float = 1.0, img_range: float = 255.0, mean=DIV2K_MEAN) -> None:
        super().__init__()
        self.scale, self.img_range = scale, img_range
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.conv_first = nn.Conv2d(3, features, 3, padding=1)
        self.body = nn.Sequential(*[ResidualBlock(features, res_scale) for _ in range(num_blocks)])
        self.conv_after_body = nn.Conv2d(features, features, 3, padding=1)
        self.upsample = pixel_shuffle_upsampler(features, scale)
        self.conv_last = nn.Conv2d(features, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) * self.img_range
        x = self.conv_first(x)
        x = self.conv_after_body(self.body(x)) + x
        x = self.conv_last(self.upsample(x))
        return x / self.img_range + self.mean


def build_edsr(size: str = "baseline", scale: int = 2) -> EDSR:
    """``size`` in tiny | baseline | large; ``scale`` in 2 | 3 | 4."""
    if size not in SIZES:
        raise ValueError(f"EDSR size must be one of {sorted(SIZES)}, got {size!r}")
    blocks, features, res_scale = SIZES[size]
    return EDSR(scale, blocks, features, res_scale)


def convert_official_edsr(state: dict[str, torch.Tensor], num_blocks: int) -> dict[str, torch.Tensor]:
    """EDSR-PyTorch (sanghyun-son) keys -> this module's keys. The mean-shift layers are checked
    against the DIV2K mean (rgb_range 255, std 1) and dropped: here the shift is a fixed buffer.

    Raises:
        KeyError: a key of the official layout is not recognised (its name is given).
        ValueError: the mean-shift weights are not the DIV2K mean.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(("sub_mean.", "add_mean.")):
            if key.endswith(".bias"):
                sign = -1.0 if key.startswith("sub_mean") else 1.0
                expected = sign * 255.0 * torch.tensor(DIV2K_MEAN)
                if not torch.allclose(value.float(), expected, atol=1e-3):
                    raise ValueError(f"{key}: mean shift {value.tolist()} is not the DIV2K mean x 255 ({expected.tolist()})")
            continue
        if m := re.fullmatch(r"head\.0\.(weight|bias)", key):
            out[f"conv_first.{m[1]}"] = value
        elif m := re.fullmatch(r"body\.(\d+)\.body\.([02])\.(weight|bias)", key):
            out[f"body.{m[1]}.conv{1 if m[2] == '0' else 2}.{m[3]}"] = value
        elif (m := re.fullmatch(r"body\.(\d+)\.(weight|bias)", key)) and int(m[1]) == num_blocks:
            out[f"conv_after_body.{m[2]}"] = value
        elif m := re.fullmatch(r"tail\.0\.(\d+)\.(weight|bias)", key):
            out[f"upsample.{m[1]}.{m[2]}"] = value
        elif m := re.fullmatch(r"tail\.1\.(weight|bias)", key):
            out[f"conv_last.{m[1]}"] = value
        else:
            raise KeyError(f"{key}: not a key of the official EDSR layout")
    return out
