"""Weight pruning of any network's Conv2d/Linear weights (biases, norms and tables are never pruned).

- ISS-P (Iterative Soft Shrinkage-Percentage, Wang et al. ICCV 2023): after every optimizer step the
  currently smallest-magnitude fraction ``sparsity`` of each layer (or the ``n`` smallest of every
  ``m`` consecutive weights, N:M style) is multiplied by ``alpha``; the selection is recomputed every
  step from the new weights, so weights can come back. At the end of that stage the last selection
  becomes a hard zero mask, kept through fine-tuning.
- One-shot magnitude pruning: the same per-layer selection, zeroed once.
- L1-norm filter pruning (Li et al. 2017): the output filters (rows) with the smallest L1 norms.

Selection is per layer; ties are broken by position (stable sort), so results are deterministic.
"""

from __future__ import annotations

import fnmatch
import math

import torch
from torch import nn


def prunable_weights(model: nn.Module, skip: tuple[str, ...] = ()) -> dict[str, nn.Parameter]:
    """``{"<module>.weight": parameter}`` of every Conv2d / Linear whose module name matches none of
    the ``skip`` glob patterns (e.g. ``("conv_last", "upsample.*")``)."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)) and not any(fnmatch.fnmatch(name, p) for p in skip):
            out[f"{name}.weight"] = module.weight
    return out


def layer_sparsity_for(model: nn.Module, overall: float, skip: tuple[str, ...]) -> float:
    """The per-layer sparsity that zeroes ``overall`` of all prunable weights when the layers matching
    ``skip`` stay dense (the others are pruned a little more)."""
    total = sum(w.numel() for w in prunable_weights(model).values())
    pruned = sum(w.numel() for w in prunable_weights(model, skip).values())
    sparsity = overall * total / max(pruned, 1)
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"{overall:.0%} overall sparsity needs {sparsity:.1%} in the layers not skipped by {skip}")
    return sparsity


def smallest_fraction(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Bool mask of the ``min(ceil(sparsity * n), floor(0.995 * n))`` smallest |w| of a layer."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    flat = weight.detach().abs().flatten()
    n = flat.numel()
    k = min(math.ceil(sparsity * n), int(0.995 * n))
    selected = torch.zeros(n, dtype=torch.bool, device=weight.device)
    selected[torch.argsort(flat, stable=True)[:k]] = True
    return selected.view_as(weight)


def smallest_n_of_m(weight: torch.Tensor, n: int, m: int, name: str = "weight") -> torch.Tensor:
    """Bool mask of the ``n`` smallest |w| in every group of ``m`` consecutive weights (memory order)."""
    if not 0 < n < m:
        raise ValueError(f"N:M selection needs 0 < n < m, got {n}:{m}")
    if weight.numel() % m:
        raise ValueError(f"{name}: {weight.numel()} weights do not split into groups of {m} (N:M needs numel % m == 0)")
    groups = weight.detach().abs().reshape(-1, m)
    order = torch.argsort(groups, dim=1, stable=True)[:, :n]
    selected = torch.zeros_like(groups, dtype=torch.bool)
    selected.scatter_(1, order, True)
    return selected.view_as(weight)


def smallest_filters(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Bool mask selecting whole output filters (rows) with the smallest L1 norms, ceil(sparsity * rows) of them."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    norms = weight.detach().abs().flatten(1).sum(1)
    k = min(math.ceil(sparsity * norms.numel()), norms.numel() - 1)
    rows = torch.zeros(norms.numel(), dtype=torch.bool, device=weight.device)
    rows[torch.argsort(norms, stable=True)[:k]] = True
    return rows.view(-1, *([1] * (weight.ndim - 1))).expand_as(weight).clone()


def select(weight: torch.Tensor, sparsity: float, n_m: tuple[int, int] | None = None, name: str = "weight") -> torch.Tensor:
    """The unimportant weights of one layer: N:M groups when ``n_m`` is given, else the smallest fraction."""
    return smallest_n_of_m(weight, *n_m, name=name) if n_m else smallest_fraction(weight, sparsity)


@torch.no_grad()
def soft_shrink(weights: dict[str, torch.Tensor], sparsity: float, alpha: float, n_m: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
    """One ISS-P step: scale each layer's selection by ``alpha`` in place; returns the selections."""
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must be in [0, 1), got {alpha}")
    chosen = {}
    for name, weight in weights.items():
        chosen[name] = select(weight, sparsity, n_m, name)
        weight.mul_(torch.where(chosen[name], alpha, 1.0).to(weight.dtype))
    return chosen


@torch.no_grad()
def apply_masks(weights: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> None:
    """Zero every weight whose mask entry is False (masks: True = kept)."""
    for name, mask in masks.items():
        weights[name].mul_(mask.to(weights[name].dtype))


def sparsity_of(model: nn.Module, skip: tuple[str, ...] = ()) -> float:
    """Fraction of exact zeros among the prunable weights."""
    weights = prunable_weights(model, skip)
    total = sum(w.numel() for w in weights.values())
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    return zeros / max(total, 1)
