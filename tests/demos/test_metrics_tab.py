import numpy as np

from mnemovision.demos import metrics_tab
from mnemovision.vision.io import read_image, write_video
from mnemovision.vision.metrics import image_psnr


def photo():
    import skimage.data

    return skimage.data.chelsea()


def test_image_report_table_and_error_map(tmp_path):
    ref = photo()
    pred = np.clip(ref.astype(np.int16) + 6, 0, 255).astype(np.uint8)
    text, error_map = metrics_tab.image_report(pred, ref, 4, tmp_path)
    assert f"| psnr | {image_psnr(pred, ref, crop_border=4):.4f} |" in text
    assert "ssim_y" in text
    assert read_image(error_map).shape == ref.shape


def test_image_report_explains_bad_input(tmp_path):
    text, error_map = metrics_tab.image_report(photo(), photo()[:100], 0, tmp_path)
    assert text == "**Sizes differ**: prediction 451x300, reference 451x100." and error_map is None  # width x height
    text, _ = metrics_tab.image_report(None, photo(), 0, tmp_path)
    assert "Upload" in text
    text, _ = metrics_tab.image_report(photo(), photo(), 500, tmp_path)
    assert "crop_border=500" in text
    text, _ = metrics_tab.image_report(photo(), photo(), None, tmp_path)  # a cleared number field; once a TypeError
    assert text == "Enter a crop border (0 or more pixels)."
    for crop in (2.5, float("inf")):  # once truncated to 2, and an OverflowError
        text, error_map = metrics_tab.image_report(photo(), photo(), crop, tmp_path)
        assert text == f"**Error**: crop_border must be an int >= 0, got {crop!r}" and error_map is None
    text, _ = metrics_tab.image_report(photo(), photo()[::-1], 2.0, tmp_path)  # the field sends whole floats
    assert f"| psnr | {image_psnr(photo(), photo()[::-1], crop_border=2):.4f} |" in text


def test_video_report_curve(tmp_path):
    frames = np.stack([np.roll(photo()[:96, :128], 3 * t, axis=1) for t in range(6)])
    write_video(tmp_path / "ref.mp4", frames, fps=12)
    write_video(tmp_path / "pred.mp4", np.clip(frames.astype(np.int16) + 10, 0, 255).astype(np.uint8), fps=12)
    text, curve = metrics_tab.video_report(str(tmp_path / "pred.mp4"), str(tmp_path / "ref.mp4"), tmp_path)
    assert "| frames | 6 |" in text and "| fps | 12.00 |" in text
    assert read_image(curve).shape[2] == 3


def test_error_map_colours_the_mean_error_up_to_its_99th_percentile():
    from matplotlib import colormaps

    inferno = colormaps["inferno"]
    target = np.zeros((10, 10, 3), np.uint8)
    pred = np.full((10, 10, 3), 10, np.uint8)
    pred[0, :3] = 100  # 3% of the pixels: the 99th percentile is 100
    pred[9, 9] = [30, 0, 0]  # mean over the channels: 10
    got = metrics_tab.error_map(pred, target)
    assert got.shape == (10, 10, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got[0, 0], inferno(1.0)[:3], atol=1e-6)
    np.testing.assert_allclose(got[5, 5], inferno(0.1)[:3], atol=1e-6)
    np.testing.assert_allclose(got[9, 9], inferno(0.1)[:3], atol=1e-6)
    # errors below one level are not stretched: the scale is at least 1
    small = target.copy()
    small[..., 0] = 1
    np.testing.assert_allclose(metrics_tab.error_map(small, target)[3, 3], inferno(1 / 3)[:3], atol=1e-6)
    np.testing.assert_allclose(metrics_tab.error_map(target, target)[3, 3], inferno(0.0)[:3], atol=1e-6)
    # a prediction below its target counts as much as one above (no uint8 wrap-around), and one
    # outlier of 250 above the 99th percentile (100 + 1% of the way to 250) is clipped, not the scale
    pred[9, 0] = 250
    pred[5, 5] = 0
    target[5, 5] = 10
    got = metrics_tab.error_map(pred, target)
    np.testing.assert_allclose(got[5, 5], inferno(10 / 101.5)[:3], atol=1e-6)
    np.testing.assert_allclose(got[0, 0], inferno(100 / 101.5)[:3], atol=1e-6)
    np.testing.assert_allclose(got[9, 0], inferno(1.0)[:3], atol=1e-6)


def test_grey_and_rgba_uploads_are_scored_as_rgb(tmp_path):
    ref = photo()
    grey = ref[..., 1]
    rgba = np.dstack([ref, np.full(ref.shape[:2], 7, np.uint8)])
    want, _ = metrics_tab.image_report(np.repeat(grey[..., None], 3, -1), ref, 0, tmp_path / "a")
    assert metrics_tab.image_report(grey, ref, 0, tmp_path / "b")[0] == want
    text, _ = metrics_tab.image_report(rgba, ref, 0, tmp_path / "c")
    assert "| psnr | inf |" in text and "| ssim | 1.0000 |" in text


def test_identical_videos_report_infinite_psnr_and_a_capped_curve(tmp_path, monkeypatch):
    frames = np.stack([np.roll(photo()[:64, :96], 5 * t, axis=1) for t in range(4)])
    write_video(tmp_path / "ref.mp4", frames, fps=10)
    plotted = {}
    real_save_curve = metrics_tab.save_curve

    def recording_save_curve(path, series, *args):
        plotted.update(series)
        real_save_curve(path, series, *args)

    monkeypatch.setattr(metrics_tab, "save_curve", recording_save_curve)
    text, _ = metrics_tab.video_report(str(tmp_path / "ref.mp4"), str(tmp_path / "ref.mp4"), tmp_path)
    assert "| mean psnr | inf |" in text and "| mean ssim | 1.0000 |" in text
    assert plotted == {"PSNR": ([0, 1, 2, 3], [100.0] * 4)}  # inf would leave the plot empty
    text, curve = metrics_tab.video_report(str(tmp_path / "ref.mp4"), str(tmp_path / "missing.mp4"), tmp_path)
    assert text.startswith("**Error**") and curve is None
    for pred, ref in ((None, "ref.mp4"), ("ref.mp4", None), ("ref.mp4", "")):  # a cleared upload field sends None or ""
        pred, ref = (str(tmp_path / p) if p else p for p in (pred, ref))
        assert metrics_tab.video_report(pred, ref, tmp_path) == ("Upload a prediction and a reference video.", None)
