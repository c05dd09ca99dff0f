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
    assert "Sizes differ" in text and error_map is None
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
