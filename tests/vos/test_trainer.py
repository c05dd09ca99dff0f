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


def _training_checkpoint(path, net, **extra):
    """An mmengine-style checkpoint of a JointFormerTrainer: the network under ``net.``, the step
    counter beside it."""
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    state["steps"] = torch.tensor(12)
    torch.save({"meta": {"iter": 12}, "state_dict": {**state, **extra}}, path)


def test_export_keeps_the_network_and_the_inference_settings(tmp_path):
    from mnemovision.vos.api import load_model
    from mnemovision.vos.engine import export_jointformer
    from mnemovision.vos.jointformer_model import load_jointformer
    from mnemovision.vos.models import build_jointformer

    torch.manual_seed(0)
    net = build_jointformer("tiny")
    _training_checkpoint(tmp_path / "iter_12.pth", net)
    export_jointformer(tmp_path / "iter_12.pth", tmp_path / "jf.safetensors", inference={"mem_every": 3, "internal_size": 32})
    loaded = load_jointformer(tmp_path / "jf.safetensors").state_dict()
    assert set(loaded) == set(net.state_dict())
    for key, value in net.state_dict().items():  # stored in float16
        want = value.half().float() if value.is_floating_point() else value
        assert torch.equal(loaded[key], want), key
    model = load_model(str(tmp_path / "jf.safetensors"))
    assert (model.mem_every, model.internal_size) == (3, 32)


def test_export_names_the_checkpoint_that_holds_no_fitting_network(tmp_path):
    from mnemovision.vision.errors import CheckpointError
    from mnemovision.vos.engine import export_jointformer
    from mnemovision.vos.models import build_jointformer

    torch.save({"state_dict": {"steps": torch.tensor(1)}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=r"other\.pth: field 'state_dict' must hold a JointFormerTrainer's weights"):
        export_jointformer(tmp_path / "other.pth", tmp_path / "out.safetensors")
    net = build_jointformer("tiny")
    _training_checkpoint(tmp_path / "wide.pth", net, **{"net.cls_token": torch.zeros(1, 1, 50)})
    with pytest.raises(CheckpointError, match=r"wide\.pth: net\.cls_token has width 50, expected one of \[96, 192, 768\]"):
        export_jointformer(tmp_path / "wide.pth", tmp_path / "out.safetensors")
    _training_checkpoint(tmp_path / "extra.pth", net, **{"net.head.extra": torch.zeros(2)})
    with pytest.raises(CheckpointError, match=r"extra\.pth \(net\.\*, JointFormer 'tiny'\): does not match JointFormer: unexpected keys \(1\): head\.extra"):
        export_jointformer(tmp_path / "extra.pth", tmp_path / "out.safetensors")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "extra.pth").read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"cut\.pth: cannot be loaded"):
        export_jointformer(tmp_path / "cut.pth", tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()
