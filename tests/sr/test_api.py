"""The SR application API on a tiny model file the test writes: input kinds, sparse inference,
further pruning, and folder scoring against the single metrics."""

import numpy as np
import pytest
import torch

from mnemovision.sr.api import evaluate_folder, load_upscaler, pruned_further
from mnemovision.sr.export import SparseConv2d, save_sr_model
from mnemovision.sr.models import build_sr_model
from mnemovision.sr.pruning import prunable_weights, smallest_fraction
from mnemovision.vision.io import write_image
from mnemovision.vision.metrics import image_psnr, image_ssim


def tiny_model_file(tmp_path, sparsity=0.0):
    """A tiny x2 EDSR, each prunable layer magnitude-pruned to ``sparsity``, saved as the toolkit writes it."""
    torch.manual_seed(0)
    net = build_sr_model("edsr", "tiny", 2)
    with torch.no_grad():
        for weight in prunable_weights(net).values():
            weight.mul_(~smallest_fraction(weight, sparsity))
    return save_sr_model(tmp_path / f"tiny_{sparsity}.safetensors", net, "edsr", "tiny", 2, "iss-p" if sparsity else "dense")


def test_upscaler_takes_grey_and_rgba_and_sparse_inference_swaps_layers_not_results(tmp_path):
    lr = np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    path = tiny_model_file(tmp_path, sparsity=0.8)
    dense, sparse = load_upscaler(path), load_upscaler(path, sparse=True)
    assert not any(isinstance(m, SparseConv2d) for m in dense.net.modules()) and any(isinstance(m, SparseConv2d) for m in sparse.net.modules())
    out = dense(lr)
    assert out.shape == (18, 22, 3)
    assert np.abs(sparse(lr).astype(int) - out).max() <= 1  # CSR sums in another order: a rounding step at most
    np.testing.assert_array_equal(dense(np.dstack([lr, np.full((9, 11), 7, np.uint8)])), out)  # alpha dropped
    grey = lr[..., 1]
    np.testing.assert_array_equal(dense(grey), dense(np.repeat(grey[..., None], 3, -1)))


def test_pruning_further_copies_prunes_only_denser_layers_and_says_so(tmp_path):
    upscaler = load_upscaler(tiny_model_file(tmp_path, sparsity=0.3))
    before = {k: v.clone() for k, v in upscaler.net.state_dict().items()}
    weights = prunable_weights(upscaler.net)
    first = next(iter(weights))
    with torch.no_grad():
        weights[first].mul_(~smallest_fraction(weights[first], 0.9))  # one layer already sparser than asked
    kept = weights[first].clone()
    more = pruned_further(upscaler, 0.6)
    assert more.name == "edsr-tiny x2 iss-p pruned to 60% (no fine-tuning)" and more.scale == 2
    for name, weight in prunable_weights(more.net).items():
        zeros = float((weight == 0).float().mean())
        assert (torch.equal(weight, kept) if name == first else zeros >= 0.6), name
    for key, value in upscaler.net.state_dict().items():  # the original is untouched
        assert torch.equal(value, kept if key == first else before[key]), key
    assert more.meta == upscaler.meta and more.meta is not upscaler.meta  # its own metadata
    with pytest.raises(ValueError, match="bicubic has no weights to prune"):
        pruned_further(load_upscaler("bicubic", scale=2), 0.5)
    with pytest.raises(ValueError, match=r"sparsity must be a number in \[0, 1\), got 1.0"):
        pruned_further(upscaler, 1.0)


def test_missing_model_files_are_named(tmp_path, monkeypatch):
    from mnemovision.sr import api

    with pytest.raises(FileNotFoundError, match=r"nope.safetensors: no such model file$"):
        load_upscaler(tmp_path / "nope.safetensors")
    monkeypatch.setitem(api.SHIPPED, "shipped", tmp_path / "gone.safetensors")
    with pytest.raises(FileNotFoundError, match=r"gone.safetensors: no such model file \(the shipped models are written by bench/sr.py --ship\)"):
        load_upscaler("shipped")


def test_folder_scores_are_the_means_of_basicsr_y_metrics(tmp_path):
    rng = np.random.default_rng(1)
    for name in ("a.png", "b.png", "c.png"):  # three, so a median would differ from the mean
        write_image(tmp_path / "HR" / name, rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    upscaler = load_upscaler(tiny_model_file(tmp_path))
    report = evaluate_folder(upscaler, tmp_path)
    from mnemovision.sr.data import benchmark_pairs

    expected = {}
    for name, lr, gt in benchmark_pairs(tmp_path, 2):
        sr = upscaler(lr)
        expected[name] = (image_psnr(sr, gt, crop_border=2, y_channel=True), image_ssim(sr, gt, crop_border=2, y_channel=True))
    assert report["scale"] == 2 and report["model"] == upscaler.name
    for name, (psnr_y, ssim_y) in expected.items():
        assert report["per_image"][name] == {"psnr_y": psnr_y, "ssim_y": ssim_y}
    assert report["psnr_y"] == pytest.approx(np.mean([p for p, _ in expected.values()]))
    assert report["ssim_y"] == pytest.approx(np.mean([s for _, s in expected.values()]))
    with pytest.raises(ValueError, match="upscales x2, asked to score x3"):
        evaluate_folder(upscaler, tmp_path, scale=3)
