"""JointFormer's mmengine training model: the bootstrapped cross-entropy schedule it hands the clip
loss, its step count, and the inference it refuses."""

import pytest
import torch

from mnemovision.vos.engine import trainer as trainer_module
from mnemovision.vos.engine.trainer import JointFormerTrainer


def test_the_bootstrap_fraction_falls_linearly_from_1_between_the_warm_steps():
    model = JointFormerTrainer("tiny", bootstrap_p=0.2, warm_start=10, warm_end=20)
    schedule = {}
    for step in (0, 10, 11, 15, 19, 20, 21, 50):
        model.steps.fill_(step)
        schedule[step] = model.current_p()
    assert schedule == pytest.approx({0: 1.0, 10: 1.0, 11: 0.92, 15: 0.6, 19: 0.28, 20: 0.2, 21: 0.2, 50: 0.2})
    assert JointFormerTrainer("tiny", bootstrap_p=1.0, warm_start=5, warm_end=5).current_p() == 1.0  # the bounds themselves: plain CE throughout


def test_the_loss_gets_the_current_fraction_and_only_training_counts_steps(monkeypatch):
    model = JointFormerTrainer("tiny", bootstrap_p=0.5, warm_start=0, warm_end=4)
    seen = []

    def recording_loss(net, frames, masks, p):
        seen.append((net, tuple(frames.shape), tuple(masks.shape), p))
        return {"loss_ce": torch.tensor(p)}

    monkeypatch.setattr(trainer_module, "clip_loss", recording_loss)
    frames, masks = torch.zeros(1, 3, 3, 16, 16), torch.zeros(1, 3, 2, 16, 16)
    model.train()
    for _ in range(3):
        model(frames, masks, mode="loss")
    model.eval()
    assert float(model(frames, masks, mode="loss")["loss_ce"]) == pytest.approx(1 - 0.5 * 3 / 4)
    assert int(model.steps) == 3  # the evaluation call did not count
    assert [p for *_, p in seen] == pytest.approx([1.0, 1 - 0.5 / 4, 1 - 0.5 * 2 / 4, 1 - 0.5 * 3 / 4])
    assert all(net is model.net and f == (1, 3, 3, 16, 16) and m == (1, 3, 2, 16, 16) for net, f, m, _ in seen)
    with pytest.raises(ValueError, match="trains only .mode='loss' with masks.; use vos.api for inference, got mode='predict'"):
        model(frames, masks, mode="predict")
    with pytest.raises(ValueError, match="trains only"):
        model(frames, None)
    assert "steps" in model.state_dict()  # the schedule resumes with the checkpoint


@pytest.mark.parametrize("options, message", [
    (dict(bootstrap_p=15), "JointFormerTrainer.bootstrap_p must be a number in \\(0, 1\\], got 15"),  # a percentage
    (dict(bootstrap_p=0.0), "JointFormerTrainer.bootstrap_p must be a number in \\(0, 1\\], got 0.0"),
    (dict(bootstrap_p=float("nan")), "bootstrap_p must be"),  # once int(nan) at the first bootstrapped step
    (dict(warm_start=-1), "JointFormerTrainer.warm_start must be an int >= 0, got -1"),
    (dict(warm_start=10, warm_end=5), "JointFormerTrainer.warm_end must be an int >= 10, got 5"),
])
def test_the_bootstrap_schedule_out_of_range_is_named(options, message):
    with pytest.raises(ValueError, match=message):
        JointFormerTrainer("tiny", **options)
