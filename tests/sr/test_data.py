"""SR training patches and benchmark folders on small files the tests write: LR-HR alignment under
every flip and transpose, which images are used, and where LR comes from."""

import numpy as np
import pytest
import torch

from mnemovision.sr.data import SRPatches, benchmark_pairs, to_uint8
from mnemovision.vision.io import write_image


def blocky_pair(tmp_path, name="a", shape=(20, 24), seed=0):
    """A random LR image and an HR image made of its pixels as 2x2 blocks, written to ``HR/<name>.png``
    and ``LR/<name>x2.png``: any aligned patch pair then satisfies hr == repeat(lr, 2) exactly."""
    lr = np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)
    hr = lr.repeat(2, axis=0).repeat(2, axis=1)
    write_image(tmp_path / "HR" / f"{name}.png", hr)
    write_image(tmp_path / "LR" / f"{name}x2.png", lr)
    return lr, hr


def dihedral(image):
    """The 8 images SRPatches' flip (columns), rot (rows) and transpose make of ``image``."""
    for flip in (0, 1):
        for rot in (0, 1):
            for transpose in (0, 1):
                out = image[:, ::-1] if flip else image
                out = out[::-1] if rot else out
                yield (flip, rot, transpose), (out.transpose(1, 0, 2) if transpose else out)


def test_patches_stay_aligned_under_every_flip_and_transpose(tmp_path):
    lr, _ = blocky_pair(tmp_path)
    data = SRPatches(scale=2, patch=8, length=64, images=str(tmp_path / "HR"), lr_images=str(tmp_path / "LR"))
    used = set()
    for i in range(64):
        sample = data[i]
        lr_patch, hr_patch = (to_uint8(sample[key]) for key in ("inputs", "data_samples"))
        assert lr_patch.shape == (8, 8, 3) and hr_patch.shape == (16, 16, 3)
        np.testing.assert_array_equal(hr_patch, lr_patch.repeat(2, axis=0).repeat(2, axis=1))  # aligned, same transform
        found = [t for t, image in dihedral(lr) if any(np.array_equal(image[y : y + 8, x : x + 8], lr_patch) for y in range(image.shape[0] - 7) for x in range(image.shape[1] - 7))]
        assert found, i
        used.add(found[0])
    assert len(used) == 8  # every combination of the three augmentations is drawn
    other = SRPatches(scale=2, patch=8, length=64, images=str(tmp_path / "HR"), lr_images=str(tmp_path / "LR"), seed=1)
    assert any(not torch.equal(other[i]["inputs"], data[i]["inputs"]) for i in range(4))  # the seed matters


def test_patches_skip_images_too_small_and_find_lr_by_either_name(tmp_path):
    blocky_pair(tmp_path)
    write_image(tmp_path / "HR" / "small.png", np.zeros((10, 10, 3), np.uint8))  # under scale x patch: no LR needed
    write_image(tmp_path / "HR" / "cropped.png", np.zeros((20, 20, 3), np.uint8))
    write_image(tmp_path / "LR" / "croppedx2.png", np.zeros((6, 6, 3), np.uint8))  # an LR under one patch
    write_image(tmp_path / "HR" / "same.png", np.zeros((16, 16, 3), np.uint8))
    write_image(tmp_path / "LR" / "same.png", np.full((8, 8, 3), 9, np.uint8))  # named like its HR file
    data = SRPatches(scale=2, patch=8, length=4, images=str(tmp_path / "HR"), lr_images=str(tmp_path / "LR"))
    assert sorted(lr.shape[:2] for lr, _ in data.pairs) == [(8, 8), (20, 24)]
    write_image(tmp_path / "LR" / "samex2.png", np.zeros((9, 8, 3), np.uint8))  # larger than 16 / 2
    with pytest.raises(ValueError, match=r"samex2.png: 8x9 LR is larger than its HR 16x16 / 2"):
        SRPatches(scale=2, patch=8, length=4, images=str(tmp_path / "HR"), lr_images=str(tmp_path / "LR"))
    with pytest.raises(ValueError, match="no training image is at least 48 pixels on each side"):
        SRPatches(scale=2, patch=24, length=4, images=str(tmp_path / "HR"))


def test_benchmark_uses_the_lr_files_it_has_and_images_without_an_hr_folder(tmp_path):
    from mnemovision.vision.resize import bicubic_lr

    hr = np.random.default_rng(2).integers(0, 256, (18, 22, 3), dtype=np.uint8)
    write_image(tmp_path / "flat" / "b.png", hr)  # no HR/ subfolder: the images themselves
    lr_file = np.full((9, 11, 3), 7, np.uint8)  # deliberately not the bicubic LR
    write_image(tmp_path / "flat" / "LR_bicubic" / "X2" / "bx2.png", lr_file)
    (name, lr, gt), = benchmark_pairs(tmp_path / "flat", 2)
    assert name == "b.png"
    np.testing.assert_array_equal(lr, lr_file)
    np.testing.assert_array_equal(gt, hr)
    (_, lr3, gt3), = benchmark_pairs(tmp_path / "flat", 3)  # no X3 folder: MATLAB bicubic
    expected_lr, expected_gt = bicubic_lr(hr, 3)
    np.testing.assert_array_equal(lr3, expected_lr)
    np.testing.assert_array_equal(gt3, expected_gt)


def test_to_uint8_clamps_and_rounds():
    values = torch.tensor([-0.5, 100.6 / 255, 100.4 / 255, 1.5]).view(1, 1, 4).expand(3, 1, 4)
    np.testing.assert_array_equal(to_uint8(values)[0, :, 0], [0, 101, 100, 255])


def test_image_suffixes_in_any_case_and_a_missing_default_benchmark_is_named(tmp_path, monkeypatch):
    from mnemovision.sr.data import folder_images, resolve_benchmark

    write_image(tmp_path / "imgs" / "a.PNG", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    assert [name for name, _ in folder_images(tmp_path / "imgs")] == ["a.PNG"]
    assert resolve_benchmark(tmp_path / "imgs") == tmp_path / "imgs"
    (tmp_path / "no_data").mkdir()
    monkeypatch.setenv("MNEMOVISION_DATA", str(tmp_path / "no_data"))  # a shared data folder without it
    with pytest.raises(FileNotFoundError, match="benchmark folder not given and sr/Set5 not found in the shared data"):
        resolve_benchmark(None)
