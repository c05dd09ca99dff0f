"""MATLAB-compatible bicubic against the benchmark's own LR files, and the published bicubic rows."""

import numpy as np
import pytest

from mnemovision.sr.api import evaluate_folder, load_upscaler
from mnemovision.sr.data import benchmark_pairs
from mnemovision.vision.io import read_image
from mnemovision.vision.resize import bicubic_lr, contributions, imresize

def test_training_patches_benchmark_scale_and_further_pruning_refuse_bad_values(tmp_path):
    from mnemovision.sr.api import pruned_further
    from mnemovision.sr.data import SRPatches
    from mnemovision.vision.io import write_image

    with pytest.raises(ValueError, match="SRPatches.patch must be an int >= 1, got 0"):  # once empty patches
        SRPatches(patch=0)
    with pytest.raises(ValueError, match="SRPatches.length must be an int >= 1, got 0"):
        SRPatches(length=0)
    write_image(tmp_path / "HR" / "a.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "LR_bicubic" / "X0").mkdir(parents=True)
    with pytest.raises(ValueError, match="scale must be an int >= 1, got 0"):
        benchmark_pairs(tmp_path, 0)
    with pytest.raises(ValueError, match="sparsity must be a number in \\[0, 1\\), got nan"):  # once a no-op named "pruned to nan%"
        pruned_further(load_upscaler("shipped"), float("nan"))


@pytest.mark.data
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_downscaling_reproduces_the_set5_lr_files(shared_data, scale):
    folder = shared_data("sr", "Set5")
    for hr_file in sorted((folder / "HR").glob("*.png")):
        ref = read_image(folder / "LR_bicubic" / f"X{scale}" / f"{hr_file.stem}x{scale}.png")
        lr, gt = bicubic_lr(read_image(hr_file), scale)
        assert lr.shape == ref.shape and gt.shape == (ref.shape[0] * scale, ref.shape[1] * scale, 3)
        diff = np.abs(lr.astype(int) - ref.astype(int))
        if scale == 3:
            assert diff.max() == 0, hr_file.name  # bit-exact
        else:  # MATLAB's own rounding of a few half-way values: measured <= 2 levels on < 1% of pixels
            assert diff.max() <= 2 and (diff > 0).mean() < 0.01, (hr_file.name, diff.max(), (diff > 0).mean())


# Published bicubic PSNR-Y on Set5 (crop border = scale, BT.601 Y): 33.66, 30.39, 28.42 dB.
@pytest.mark.data
@pytest.mark.parametrize("scale,published", [(2, 33.66), (3, 30.39), (4, 28.42)])
def test_bicubic_baseline_matches_the_published_numbers(shared_data, scale, published):
    report = evaluate_folder(load_upscaler("bicubic", scale), shared_data("sr", "Set5"), scale)
    assert report["psnr_y"] == pytest.approx(published, abs=0.05)
    assert set(report["per_image"]) == {"baby.png", "bird.png", "butterfly.png", "head.png", "woman.png"}


@pytest.mark.data
def test_lr_is_made_on_the_fly_when_the_folder_has_none(shared_data, tmp_path):
    import shutil

    shutil.copytree(shared_data("sr", "Set5") / "HR", tmp_path / "HR")
    on_the_fly = evaluate_folder(load_upscaler("bicubic", 3), tmp_path, 3)
    assert on_the_fly["psnr_y"] == pytest.approx(30.39, abs=0.05)  # x3 LR files are reproduced exactly


def test_imresize_basics():
    weights, indices = contributions(8, 4, 0.5)
    np.testing.assert_allclose(weights.sum(1), 1.0)
    assert indices.min() >= 0 and indices.max() <= 7
    np.testing.assert_allclose(contributions(10, 6, 0.6)[0].sum(1), 1.0, rtol=0, atol=1e-12)  # raw taps sum to 1 +- 0.013 here
    assert imresize(np.zeros((5, 5)), 0.5).shape == (3, 3)  # ceil(2.5), as MATLAB
    with pytest.raises(ValueError, match=r"size must be positive, got \(0, 4\)"):
        imresize(np.zeros((5, 5)), size=(0, 4))
    flat = np.full((9, 7, 3), 77, np.uint8)
    assert np.array_equal(imresize(flat, 3), np.full((27, 21, 3), 77, np.uint8))  # constants stay constant
    assert imresize(flat, size=(4, 5)).shape == (4, 5, 3)
    with pytest.raises(ValueError, match="exactly one of scale and size"):
        imresize(flat)
    with pytest.raises(ValueError, match="smaller than the scale 4"):
        bicubic_lr(flat[:3], 4)
    # NaN and infinite scales raised numpy's conversion errors, a float scale a TypeError in a slice
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="scale must be a positive finite number"):
            imresize(flat, bad)
    for bad in (2.0, 1.5, 0, True):
        with pytest.raises(ValueError, match="bicubic_lr: scale must be an int >= 1"):
            bicubic_lr(flat, bad)


def test_benchmark_errors_name_the_file(tmp_path):
    from mnemovision.vision.io import write_image

    write_image(tmp_path / "HR" / "tiny.png", np.zeros((3, 3, 3), np.uint8))
    with pytest.raises(ValueError, match="tiny.png.*smaller than the scale 4"):
        benchmark_pairs(tmp_path, 4)
    import cv2

    cv2.imwrite(str(tmp_path / "HR" / "tiny.png"), np.full((8, 8), 4000, np.uint16))  # a 16-bit PNG
    (name, lr, gt), = benchmark_pairs(tmp_path, 2)
    assert gt.shape == (8, 8, 3) and (gt == 16).all()  # scaled to 8 bits: round(4000 / 257)
    (tmp_path / "HR" / "tiny.png").unlink()
    cv2.imwrite(str(tmp_path / "HR" / "tiny.tiff"), np.full((8, 8), 0.5, np.float32))  # a float TIFF
    with pytest.raises(ValueError, match="tiny.tiff: mode: expected an 8- or 16-bit image"):
        benchmark_pairs(tmp_path, 2)


@pytest.mark.data
def test_paired_training_patches_from_folders(shared_data):
    import torch

    from mnemovision.sr.data import SRPatches

    folder = shared_data("sr", "Set5")
    paired = SRPatches(scale=4, patch=16, length=8, images=str(folder / "HR"), lr_images=str(folder / "LR_bicubic" / "X4"))
    made = SRPatches(scale=3, patch=16, length=8, images=str(folder / "HR"))
    assert len(paired.pairs) == 5
    sample = paired[3]
    assert sample["inputs"].shape == (3, 16, 16) and sample["data_samples"].shape == (3, 64, 64)
    # the x3 LR made on the fly equals the shipped LR files, so the pairs are the benchmark's own
    ref = read_image(folder / "LR_bicubic" / "X3" / "babyx3.png")
    assert np.array_equal(made.pairs[0][0], ref)
    assert torch.equal(paired[3]["inputs"], paired[3]["inputs"])  # deterministic per index


def test_imresize_to_a_size_resizes_the_smaller_scale_first_and_rounds_each_pass():
    """MATLAB resizes the dimension with the smaller scale first and rounds uint8 after each pass, so
    the order shows in the result: here rows shrink (x 0.5) before columns grow (x 1.5)."""
    from mnemovision.vision.resize import _resize_axis

    image = np.random.default_rng(3).integers(0, 256, (12, 10, 3), dtype=np.uint8)

    def passes(first, second):
        out = image
        for axis, length, scale in (first, second):
            out = np.clip(np.round(_resize_axis(out, axis, length, scale, True)), 0, 255).astype(np.uint8)
        return out

    rows, cols = (0, 6, 0.5), (1, 15, 1.5)
    resized = imresize(image, size=(6, 15))
    assert resized.shape == (6, 15, 3) and np.array_equal(resized, passes(rows, cols))
    assert not np.array_equal(resized, passes(cols, rows))  # the order matters for these pixels
    grow_rows, shrink_cols = (0, 18, 1.5), (1, 5, 0.5)  # now the columns have the smaller scale: they go first
    assert np.array_equal(imresize(image, size=(18, 5)), passes(shrink_cols, grow_rows))
    assert not np.array_equal(imresize(image, size=(18, 5)), passes(grow_rows, shrink_cols))


def test_imresize_without_antialiasing_samples_the_cubic_at_unit_width_and_refuses_what_it_cannot_resize():
    row = np.random.default_rng(4).normal(size=(1, 12))
    sharp = imresize(row, size=(1, 6), antialias=False)
    # x 0.5: output x (1-based) sits at source 2x - 0.5, between pixels 2x - 1 and 2x: taps at
    # distances 0.5 (weight 0.5625) and 1.5 (-0.0625), mirrored at the edges
    padded = np.concatenate([row[0, :1], row[0], row[0, -1:]])  # symmetric padding by one
    expected = [0.5625 * (padded[2 * i + 1] + padded[2 * i + 2]) - 0.0625 * (padded[2 * i] + padded[2 * i + 3]) for i in range(6)]
    np.testing.assert_allclose(sharp[0], expected, rtol=0, atol=1e-12)
    assert not np.allclose(imresize(row, size=(1, 6)), sharp)  # antialiased: a kernel twice as wide
    with pytest.raises(ValueError, match="exactly one of scale and size"):
        imresize(row, 0.5, size=(1, 6))
    with pytest.raises(ValueError, match=r"non-empty, got \[0, 4\]"):
        imresize(np.zeros((0, 4)), 0.5)
