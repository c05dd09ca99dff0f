"""Network building blocks several methods share (the method packages may not import each other)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Mlp(nn.Module):
    """The transformer MLP: Linear(dim, hidden), GELU, Linear(hidden, dim); parameters ``fc1``, ``fc2``
    (the key names of timm, SwinIR and ConvMAE checkpoints)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def vit_init(module: nn.Module) -> None:
    """The ViT initialisation (``model.apply(vit_init)``): Linear weights truncated-normal with std
    0.02 and zero biases; LayerNorms at weight 1, bias 0."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
