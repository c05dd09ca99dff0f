"""The engine's hooks, driven by a stand-in runner (its ``iter`` and ``max_iters``) step by step."""

from types import SimpleNamespace

import pytest
import torch

from mnemovision.engine.hooks import CallbackHook, RichProgressHook


def run_steps(hook, runner, outputs=lambda step: {}):
    """What mmengine's loop does around each step: ``after_train_iter`` while ``runner.iter`` is the
    step's index, then the count moves on."""
    while runner.iter < runner.max_iters:
        hook.after_train_iter(runner, runner.iter, outputs=outputs(runner.iter))
        runner.iter += 1


def test_callback_runs_every_nth_step_and_the_last():
    calls = []
    hook = CallbackHook(lambda runner, outputs: calls.append((runner.iter + 1, outputs["step"])), every=3)
    run_steps(hook, SimpleNamespace(iter=0, max_iters=7), outputs=lambda step: {"step": step})
    assert calls == [(3, 2), (6, 5), (7, 6)]  # steps counted from 1; the last one always
    with pytest.raises(ValueError, match="every must be >= 1, got 0"):
        CallbackHook(print, every=0)


def test_progress_bar_starts_where_a_resumed_run_stopped_and_shows_the_named_scalars():
    hook = RichProgressHook("fitting", keys=("loss", "psnr"))
    runner = SimpleNamespace(iter=4, max_iters=10)  # resumed at iteration 4
    hook.before_train(runner)
    bar = hook._bar
    try:
        (task,) = bar.tasks
        assert (task.description, task.total, task.completed) == ("fitting", 10, 4)
        hook.after_train_iter(runner, 4, outputs={"loss": torch.tensor(0.123456), "psnr": 31.5, "other": 1.0, "text": "x"})
        assert task.completed == 5 and task.fields["status"] == "loss 0.1235  psnr 31.5"
        hook.after_train_iter(runner, 4, outputs={"loss": "not a number"})
        assert task.fields["status"] == ""
        hook.after_train_iter(runner, 5, outputs=None)  # a step that returned nothing
        assert task.fields["status"] == ""
    finally:
        hook.after_train(runner)
    assert hook._bar is None and not bar.live.is_started  # stopped, ready for another run


def test_only_the_main_process_shows_a_bar(monkeypatch):
    import mmengine.dist

    monkeypatch.setattr(mmengine.dist, "is_main_process", lambda: False)  # a torchrun worker of rank > 0
    hook = RichProgressHook()
    runner = SimpleNamespace(iter=0, max_iters=3)
    hook.before_train(runner)
    assert hook._bar is None
    run_steps(hook, runner, outputs=lambda step: {"loss": 1.0})  # and its steps draw nothing
    hook.after_train(runner)
