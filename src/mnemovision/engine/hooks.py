"""Hooks every recipe can use: a rich progress bar over the training iterations, and a callback for
programs that drive a run (the demos show live progress and previews through it)."""

from __future__ import annotations

from collections.abc import Callable

from mmengine.hooks import Hook


def _scalar(value) -> float | None:
    try:
        return float(value.detach()) if hasattr(value, "detach") else float(value)
    except (TypeError, ValueError):
        return None


class RichProgressHook(Hook):
    """A rich progress bar over ``runner.max_iters`` (resumed runs start where they stopped), showing
    the scalars of each step's outputs named in ``keys``. Main process only. High priority, so the
    bar is closed before other hooks' ``after_train`` work prints."""

    priority = "VERY_HIGH"

    def __init__(self, description: str = "training", keys: tuple[str, ...] = ("loss",)) -> None:
        self.description, self.keys = description, tuple(keys)
        self._bar = self._task = None

    def before_train(self, runner) -> None:
        from mmengine.dist import is_main_process

        from mnemovision.vision.progress import make_progress

        if not is_main_process():
            return
        self._bar = make_progress()
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=runner.max_iters, completed=runner.iter, status="")

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self._bar is None:
            return
        parts = []
        for key in self.keys:
            value = _scalar((outputs or {}).get(key))
            if value is not None:
                parts.append(f"{key} {value:.4g}")
        self._bar.update(self._task, completed=runner.iter + 1, status="  ".join(parts))

    def after_train(self, runner) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class CallbackHook(Hook):
    """Calls ``fn(runner, outputs)`` after every ``every``-th training step (and the last one)."""

    priority = "LOW"

    def __init__(self, fn: Callable, every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.fn, self.every = fn, every

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        step = runner.iter + 1
        if step % self.every == 0 or step == runner.max_iters:
            self.fn(runner, outputs)
