"""Pruning as mmengine hooks, for any network's Conv2d / Linear weights (``sr.pruning``).

All three keep a hard mask once it exists and re-apply it after every optimizer step (gradients are
not masked, as in the ISS-P code; the pruned weights are zeroed again). Masks travel in the
checkpoints (``pruning_masks``), so a resumed run keeps them.

- ``ISSPHook``: soft shrinkage after each step until ``prune_iters`` (from ``shrink_from``), then the
  hard mask.
- ``MagnitudePruneHook``: one-shot per-layer magnitude pruning after step ``prune_at``.
- ``FilterPruneHook``: one-shot L1-norm filter pruning after step ``prune_at``.
"""

from __future__ import annotations

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mnemovision.sr.pruning import apply_masks, prunable_weights, smallest_filters, soft_shrink, select


def _weights(runner, skip: tuple[str, ...]) -> dict:
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    return prunable_weights(model, skip)


class MaskedTrainingHook(Hook):
    """Holds the hard masks (True = kept), applies them after each step, saves and restores them."""

    priority = "LOW"  # after the optimizer step, before checkpoints are written

    def __init__(self, sparsity: float, skip: tuple[str, ...] = ()) -> None:
        if not 0.0 <= sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
        self.sparsity, self.skip = float(sparsity), tuple(skip)
        self.masks: dict | None = None

    def make_masks(self, runner) -> None:
        raise NotImplementedError

    def due(self, step: int) -> bool:
        """Whether the hard masks are made after training step ``step`` (1-based)."""
        raise NotImplementedError

    def before_train(self, runner) -> None:
        if self.masks is None and self.due(runner.iter):  # e.g. prune_at=0: prune the initial weights
            self.make_masks(runner)
        if self.masks is not None:
            apply_masks(_weights(runner, self.skip), self.masks)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.masks is None and self.due(runner.iter + 1):
            self.make_masks(runner)
        if self.masks is not None:
            apply_masks(_weights(runner, self.skip), self.masks)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.masks is not None:
            checkpoint["pruning_masks"] = {k: v.cpu() for k, v in self.masks.items()}

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        masks = checkpoint.get("pruning_masks")
        if masks is not None:
            device = next(iter(_weights(runner, self.skip).values())).device
            self.masks = {k: v.to(device) for k, v in masks.items()}


class ISSPHook(MaskedTrainingHook):
    """ISS-P. Args: sparsity (per layer), alpha (shrink factor, 0.95 in the paper's commands),
    prune_iters (the step after which the hard mask is made), shrink_from (the first step that
    shrinks: 0 in the paper, which shrinks from the random initialisation; later, a dense warm-up,
    as in the ISS-P code's ``IST-fast`` mode, which trains dense before its mask), n_m (``(n, m)``
    for N:M selection), skip (globs of layers left dense)."""

    def __init__(self, sparsity: float = 0.9, alpha: float = 0.95, prune_iters: int = 1000, n_m: tuple[int, int] | None = None,
                 skip: tuple[str, ...] = (), shrink_from: int = 0) -> None:
        super().__init__(sparsity, skip)
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1), got {alpha}")
        if not 0 <= shrink_from <= prune_iters:
            raise ValueError(f"shrink_from must be in [0, prune_iters={prune_iters}], got {shrink_from}")
        self.alpha, self.prune_iters, self.n_m = float(alpha), int(prune_iters), tuple(n_m) if n_m else None
        self.shrink_from = int(shrink_from)

    def due(self, step: int) -> bool:
        return step >= self.prune_iters

    def make_masks(self, runner) -> None:
        weights = _weights(runner, self.skip)
        self.masks = {name: ~select(w, self.sparsity, self.n_m, name) for name, w in weights.items()}

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        step = runner.iter + 1  # the step just taken, 1-based
        if self.masks is None and step < self.prune_iters:
            if step > self.shrink_from:
                soft_shrink(_weights(runner, self.skip), self.sparsity, self.alpha, self.n_m)
            return
        super().after_train_iter(runner, batch_idx, data_batch, outputs)


class MagnitudePruneHook(MaskedTrainingHook):
    """One-shot per-layer magnitude pruning after step ``prune_at`` (0: the initial weights)."""

    def __init__(self, sparsity: float = 0.9, prune_at: int = 0, skip: tuple[str, ...] = ()) -> None:
        super().__init__(sparsity, skip)
        self.prune_at = int(prune_at)

    def due(self, step: int) -> bool:
        return step >= self.prune_at

    def make_masks(self, runner) -> None:
        self.masks = {name: ~select(w, self.sparsity, None, name) for name, w in _weights(runner, self.skip).items()}


class FilterPruneHook(MagnitudePruneHook):
    """One-shot L1-norm filter pruning after step ``prune_at``; by default the output convs that make
    the image (``conv_last``, ``upsample.*``) keep all their filters."""

    def __init__(self, sparsity: float = 0.9, prune_at: int = 0, skip: tuple[str, ...] = ("conv_last", "upsample.*", "net.conv_last", "net.upsample.*")) -> None:
        super().__init__(sparsity, prune_at, skip)

    def make_masks(self, runner) -> None:
        self.masks = {name: ~smallest_filters(w, self.sparsity) for name, w in _weights(runner, self.skip).items()}
