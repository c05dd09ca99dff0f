"""The super-resolution tab's function, without a browser (needs the shipped models)."""

import numpy as np
import pytest

from mnemovision.demos import sr_tab
from mnemovision.sr.api import SHIPPED, load_upscaler
from mnemovision.vision.metrics import image_psnr, image_ssim
from mnemovision.vision.resize import bicubic_lr

pytestmark = pytest.mark.skipif(not all(p.exists() for p in SHIPPED.values()), reason="shipped SR models missing (bench/sr.py --ship writes them)")


def reference():
    import skimage.data

    return skimage.data.astronaut()[100:292, 150:342]  # 192x192 of a real photo


def test_compare_scores_three_models_against_the_reference():
    images, table = sr_tab.compare(None, reference(), 0.9)
    assert len(images) == 3 + 4  # three full outputs, four zoom crops (with the reference's)
    assert all(img.shape == (192, 192, 3) for img, _ in images[:3])
    assert images[3][0].shape == (4 * sr_tab.ZOOM, 4 * sr_tab.ZOOM, 3)
    lr, gt = bicubic_lr(reference(), 2)
    out = load_upscaler("shipped")(lr)
    expected = image_psnr(out, gt, crop_border=2, y_channel=True)
    assert f"{expected:.2f}" in table and "bicubic" in table
    # SSIM on the luma too, as BasicSR reports it (on RGB it differs from the fourth decimal)
    ssim_y, ssim_rgb = (image_ssim(out, gt, crop_border=2, y_channel=y) for y in (True, False))
    assert f"{ssim_y:.4f}" != f"{ssim_rgb:.4f}" and table.splitlines()[-1].split("|")[4].strip() == f"{ssim_y:.4f}"
    psnrs = [float(row.split("|")[3]) for row in table.splitlines()[2:]]
    assert psnrs[1] > psnrs[0] + 1.0 and psnrs[2] > psnrs[0] + 1.0  # both networks clearly beat bicubic


def test_pruning_further_costs_quality_and_bad_inputs_are_explained():
    _, table90 = sr_tab.compare(None, reference(), 0.9)
    _, table99 = sr_tab.compare(None, reference(), 0.99)
    assert "pruned to 99%" in table99 and "pruned to 93%" in sr_tab.compare(None, reference(), 0.93)[1]  # any step above the shipped 90%
    assert float(table99.splitlines()[-1].split("|")[3]) < float(table90.splitlines()[-1].split("|")[3])
    assert sr_tab.compare(None, None, 0.9)[1].startswith("Upload")
    lr = np.zeros((50, 50, 3), np.uint8)
    assert "smaller than the input" in sr_tab.compare(lr, np.zeros((60, 60, 3), np.uint8), 0.9)[1]
    for short in ((60, 120, 3), (120, 60, 3)):  # too small one way only: the same explanation
        assert "smaller than the input" in sr_tab.compare(lr, np.zeros(short, np.uint8), 0.9)[1], short
    images, table = sr_tab.compare(lr, None, 0.9)
    assert images[0][0].shape == (100, 100, 3) and "PSNR" not in table


def test_small_or_grey_references_are_scored_or_explained():
    # a 1x1 or 3x3 reference, a 4x4 input with its 8x8 reference and a grey reference raised before
    assert "smaller than the scale" in sr_tab.compare(None, np.zeros((1, 1, 3), np.uint8), 0.9)[1]
    assert "crop_border=2 leaves nothing" in sr_tab.compare(None, np.zeros((3, 3, 3), np.uint8), 0.9)[1]
    images, table = sr_tab.compare(np.zeros((4, 4, 3), np.uint8), np.zeros((8, 8, 3), np.uint8), 0.9)
    assert len(images) == 7 and table.count("n/a") == 6 and "SSIM window" in table
    grey = reference()[..., 0]
    _, table = sr_tab.compare(None, grey, 0.9)
    psnrs = [float(row.split("|")[3]) for row in table.splitlines()[2:]]
    assert len(psnrs) == 3 and psnrs[1] > psnrs[0]


def test_zoom_crops_stay_inside_the_image_and_enlarge_by_repeating_pixels():
    image = np.arange(100 * 80 * 3).reshape(100, 80, 3)
    middle = sr_tab.zoom_crop(image, (0.5, 0.5))
    assert middle.shape == (4 * 48, 4 * 48, 3)
    np.testing.assert_array_equal(middle[::4, ::4], image[26:74, 16:64])  # centred: 50 - 24, 40 - 24
    np.testing.assert_array_equal(middle[3::4, 3::4], image[26:74, 16:64])
    np.testing.assert_array_equal(sr_tab.zoom_crop(image, (0.0, 0.0), factor=1), image[:48, :48])
    np.testing.assert_array_equal(sr_tab.zoom_crop(image, (1.0, 1.0), factor=1), image[52:, 32:])
    np.testing.assert_array_equal(sr_tab.zoom_crop(image, (0.1, 0.9), size=10, factor=1), image[5:15, 67:77])  # 10 - 5, 72 - 5
    np.testing.assert_array_equal(sr_tab.zoom_crop(image[:30], (0.5, 0.5), factor=1), image[:30, 25:55])  # at most the image's side
    np.testing.assert_array_equal(sr_tab.zoom_crop(image[:, :30], (0.5, 0.5), factor=1), image[35:65, :30])


def test_the_zoom_centre_moves_every_crop_and_the_reference_crop_comes_last():
    images, _ = sr_tab.compare(None, reference(), 0.9, zoom_y=0.0, zoom_x=1.0)
    _, gt = bicubic_lr(reference(), 2)
    names = [caption for _, caption in images[:3]]
    assert names[0] == "bicubic" and [caption for _, caption in images[3:]] == [f"zoom: {name}" for name in names] + ["zoom: reference"]
    np.testing.assert_array_equal(images[6][0], sr_tab.zoom_crop(gt, (0.0, 1.0)))
    np.testing.assert_array_equal(images[5][0], sr_tab.zoom_crop(images[2][0], (0.0, 1.0)))
    np.testing.assert_array_equal(images[5][0][::4, ::4], images[2][0][:48, -48:])


def test_a_larger_reference_is_cropped_to_the_output_from_its_top_left():
    lr, gt = bicubic_lr(reference(), 2)
    padded = np.pad(gt, ((0, 10), (0, 6), (0, 0)), mode="reflect")  # 202 x 198: extra rows and columns at the end
    _, exact = sr_tab.compare(lr, gt, 0.9)
    _, cropped = sr_tab.compare(lr, padded, 0.9)

    def scores(table):  # the PSNR-Y and SSIM-Y cells (the times differ)
        return [row.split("|")[3:5] for row in table.splitlines()[2:]]

    assert scores(cropped) == scores(exact)
