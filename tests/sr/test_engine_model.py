"""The SR model and metric that mmengine runs: the three forward modes, BasicSR's Y-channel scores
worked out by hand, and a validation through a real runner that scores like ``evaluate_folder``."""

import math

import numpy as np
import pytest
import skimage.data
import torch

from mnemovision.engine import build_runner, load_config
from mnemovision.sr.api import Upscaler, evaluate_folder
from mnemovision.sr.engine import SRMetric, SRModel
from mnemovision.sr.models import build_sr_model
from mnemovision.vision.io import write_image
from tests.sr.test_pruning import TINY

Y_GAIN = (65.481 + 128.553 + 24.966) / 255  # a grey step of 1 moves BT.601 luma by this much


def test_the_three_forward_modes_of_the_wrapped_network():
    torch.manual_seed(0)
    model = SRModel("edsr", "tiny", 3)
    reference = build_sr_model("edsr", "tiny", 3)
    assert model.state_dict().keys() == {f"net.{k}" for k in reference.state_dict()}
    assert (model.arch, model.size, model.scale) == ("edsr", "tiny", 3)
    lr, hr = torch.rand(2, 3, 5, 7), torch.rand(2, 3, 15, 21)
    out = model(lr)  # mode defaults to "tensor"
    assert out.shape == (2, 3, 15, 21) and torch.equal(out, model.net(lr)) and out.requires_grad
    loss = model(lr, hr, mode="loss")
    assert set(loss) == {"loss"}
    torch.testing.assert_close(loss["loss"], (out - hr).abs().mean())
    loss["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())
    samples = {"gt": [hr[0], hr[1]], "name": ["a.png", "b.png"]}
    predictions = model(lr, samples, mode="predict")
    assert [p["name"] for p in predictions] == ["a.png", "b.png"]
    for i, p in enumerate(predictions):
        assert torch.equal(p["pred"], out[i]) and p["gt"] is samples["gt"][i]
    with pytest.raises(ValueError, match="mode='loss' needs data_samples"):
        model(lr, mode="loss")
    with pytest.raises(ValueError, match="mode must be 'tensor', 'loss' or 'predict', got 'train'"):
        model(lr, hr, mode="train")


def _grey(value: int, side: int, border: int, border_value: int) -> torch.Tensor:
    """[3, side, side] in [0, 1]: ``value`` inside, ``border_value`` on a frame ``border`` pixels wide."""
    image = torch.full((3, side, side), border_value / 255.0, dtype=torch.float64)
    image[:, border:-border, border:-border] = value / 255.0
    return image


def test_the_metric_is_basicsr_psnr_and_ssim_on_luma_inside_a_border_of_scale_pixels():
    scale, side = 3, 24
    metric = SRMetric(scale=scale)
    assert metric.prefix == "sr"
    gt = _grey(128, side, scale, 128)
    # Each prediction is a grey step brighter inside, with garbage far outside [0, 1] on a frame
    # exactly `scale` wide: clamped like BasicSR's tensor2img (not refused), then cropped away.
    steps = (10, 20)
    samples = [{"pred": _grey(128 + d, side, scale, edge), "gt": gt, "name": f"{d}.png"} for d, edge in zip(steps, (-400, 765))]
    metric.process({}, samples)
    scores = metric.evaluate(size=2)
    c1 = (0.01 * 255) ** 2
    y_gt = 16 + 128 * Y_GAIN
    psnr = [20 * math.log10(255 / (d * Y_GAIN)) for d in steps]
    ssim = [(2 * y_gt * (y_gt + d * Y_GAIN) + c1) / (y_gt**2 + (y_gt + d * Y_GAIN) ** 2 + c1) for d in steps]  # flat images: luminance term only
    assert set(scores) == {"sr/psnr_y", "sr/ssim_y"}
    assert scores["sr/psnr_y"] == pytest.approx(np.mean(psnr), abs=1e-4)  # the mean of the images' PSNR, not the PSNR of the mean error
    assert scores["sr/psnr_y"] != pytest.approx(10 * math.log10(255**2 / np.mean([(d * Y_GAIN) ** 2 for d in steps])), abs=1e-2)
    assert scores["sr/ssim_y"] == pytest.approx(np.mean(ssim), abs=1e-6)


def test_validation_under_the_runner_scores_exactly_like_evaluate_folder(tmp_path):
    # Three real photographs of odd sizes (GT is HR cropped to LR size x 2), three so a median would differ from the mean.
    for name, photo in (("astronaut.png", skimage.data.astronaut()[::6, ::6]), ("coffee.png", skimage.data.coffee()[1::5, ::5]), ("chelsea.png", skimage.data.chelsea()[::4, 1::4])):
        write_image(tmp_path / "Set" / "HR" / name, photo)
    cfg = load_config("sr_edsr_x2", {
        **TINY, "train_dataloader.batch_size": 2, "val_dataloader.dataset.folder": str(tmp_path / "Set"),
        "train_cfg.max_iters": 4, "train_cfg.val_interval": 4,
        "default_hooks.checkpoint.interval": 4, "param_scheduler.0.T_max": 4, "param_scheduler.0.end": 4,
    })
    cfg.custom_hooks = []
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    runner = build_runner(cfg, work_dir=tmp_path / "work")
    runner.train()
    metrics = runner.val_loop.run()
    report = evaluate_folder(Upscaler(2, "trained", runner.model.net), tmp_path / "Set")
    assert metrics["sr/psnr_y"] == pytest.approx(report["psnr_y"], rel=1e-12)
    assert metrics["sr/ssim_y"] == pytest.approx(report["ssim_y"], rel=1e-12)
    assert 10 < metrics["sr/psnr_y"] < 45 and 0 < metrics["sr/ssim_y"] < 1  # four steps from random weights: far from bicubic yet
