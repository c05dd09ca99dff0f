import math

import numpy as np
import pytest
import torch

from mnemovision.vision.errors import CheckpointError
from mnemovision.vision.metrics import LPIPS, compare_images, image_psnr, image_ssim, psnr, rgb_to_y, ssim


def photo(name="astronaut"):
    import skimage.data

    return getattr(skimage.data, name)()


def noisy(img, sigma, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(img.astype(np.float64) + rng.normal(0, sigma, img.shape), 0, 255).round().astype(np.uint8)


def test_psnr_known_value_and_identity():
    a = torch.zeros(2, 3, 8, 8)
    b = torch.full((2, 3, 8, 8), 0.1)
    np.testing.assert_allclose(psnr(a, b).numpy(), [20.0, 20.0], rtol=1e-6)  # mse 0.01 -> 20 dB
    assert torch.isinf(psnr(a, a)).all()
    with pytest.raises(ValueError, match="one shape"):
        psnr(a, b[:1])
    torch.testing.assert_close(psnr(a * 255, b * 255, data_range=255.0), psnr(a, b))  # the peak is squared
    with pytest.raises(ValueError, match=r"images must be \[\.\.\., C, H, W\], got shape \(8, 8\)"):
        psnr(a[0, 0], b[0, 0])


def test_y_channel_matches_the_bt601_matlab_constants():
    colours = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.uint8)
    np.testing.assert_allclose(rgb_to_y(colours)[0], [16.0, 235.0, 81.481, 144.553, 40.966], atol=1e-4)


def test_y_channel_and_scores_do_not_depend_on_the_memory_layout():
    """The same pixels as a C-order, Fortran-order, transposed-back or strided array: identical
    luma bits and identical PSNR-Y and SSIM-Y (a BLAS matmul gave some pixels' luma a float32
    rounding step apart, and the SR runner's scores differed from evaluate_folder's in the 10th
    digit); the luma is the float64 BT.601 value to float32 rounding."""
    img = np.ascontiguousarray(photo())
    other = noisy(img, 8.0)
    layouts = [np.asfortranarray(img), np.ascontiguousarray(img.transpose(1, 0, 2)).transpose(1, 0, 2), np.repeat(img, 2, axis=1)[:, ::2]]
    want_y = rgb_to_y(img)
    exact = img.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255.0 + 16.0
    np.testing.assert_allclose(want_y, exact, rtol=0, atol=4 * np.spacing(np.float32(235.0)))
    for image in layouts:
        assert np.array_equal(image, img)
        assert np.array_equal(rgb_to_y(image), want_y)
        assert image_psnr(other, image, crop_border=2, y_channel=True) == image_psnr(other, img, crop_border=2, y_channel=True)
        assert image_ssim(other, image, crop_border=2, y_channel=True) == image_ssim(other, img, crop_border=2, y_channel=True)


def test_image_psnr_matches_skimage_on_a_real_photo():
    from skimage.metrics import peak_signal_noise_ratio

    img = photo()
    other = noisy(img, 8.0)
    assert image_psnr(other, img) == pytest.approx(peak_signal_noise_ratio(img, other, data_range=255), abs=1e-10)
    crop = 4
    expected = peak_signal_noise_ratio(img[crop:-crop, crop:-crop], other[crop:-crop, crop:-crop], data_range=255)
    assert image_psnr(other, img, crop_border=crop) == pytest.approx(expected, abs=1e-10)
    assert image_psnr(img, img) == math.inf


def test_image_metrics_round_float_inputs_to_uint8_first():
    img = photo()
    as_float = img.astype(np.float32) / 255.0 + 0.4 / 255.0  # rounds back to img
    assert image_psnr(as_float, img) == math.inf
    overshoot = as_float * 1.5 - 0.25  # -0.25..1.26: a network's output, clipped rather than refused
    assert image_psnr(overshoot, img) == image_psnr(np.clip(overshoot, 0.0, 1.0), img)
    # a 0-255 image passed as float was clipped to white and scored; NaN was cast to 0 and scored
    with pytest.raises(ValueError, match=r"pred is float with values in 0\.\.255; float images are read as \[0, 1\]"):
        image_psnr(img.astype(np.float64), img)
    with pytest.raises(ValueError, match=r"pred is float with values in 0\.\.2\.5;"):  # just past the [-1, 2] allowance
        image_psnr(img / 102.0, img)
    nan = as_float.copy()
    nan[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="target has NaN or infinite values"):
        image_ssim(img, nan)


@pytest.mark.parametrize("crop", [2.5, True, -1, None])
def test_crop_border_must_be_an_int_of_zero_or_more(crop):
    """Once a TypeError from slicing (2.5, None), a crop of 1 (True), or "-1 leaves nothing" of a large image."""
    img = photo()
    with pytest.raises(ValueError, match=f"crop_border must be an int >= 0, got {crop!r}"):
        image_psnr(img, img, crop_border=crop)
    assert image_psnr(img[1:-1, 1:-1], img[::-1][1:-1, 1:-1]) == image_psnr(img, img[::-1], crop_border=np.int64(1))
    small = img[:10, :12]
    with pytest.raises(ValueError, match="crop_border=5 leaves nothing of a 10x12 image"):  # an empty crop would score NaN
        image_psnr(small, small, crop_border=5)
    assert image_psnr(small, small[::-1], crop_border=4) == image_psnr(small[4:-4, 4:-4], small[::-1][4:-4, 4:-4])


def test_image_ssim_matches_skimage_gaussian_ssim():
    from skimage.metrics import structural_similarity

    img = photo("coffee")
    other = noisy(img, 12.0)
    expected = structural_similarity(img, other, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1)
    assert image_ssim(other, img) == pytest.approx(expected, abs=1e-6)
    y_expected = structural_similarity(rgb_to_y(img), rgb_to_y(other), gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    assert image_ssim(other, img, y_channel=True) == pytest.approx(y_expected, abs=1e-6)


def test_y_channel_psnr_on_real_set5(shared_data):
    """PSNR-Y of Set5 HR against its own uint8 noisy copy equals a direct float64 computation."""
    from mnemovision.vision.io import read_image

    hr = read_image(shared_data("sr", "Set5", "HR") / "baby.png")
    other = noisy(hr, 5.0)
    ya, yb = rgb_to_y(other)[2:-2, 2:-2], rgb_to_y(hr)[2:-2, 2:-2]
    expected = 10 * math.log10(255**2 / np.mean((ya - yb) ** 2))
    assert image_psnr(other, hr, crop_border=2, y_channel=True) == pytest.approx(expected, abs=1e-9)
    assert 30 < expected < 50


def test_ssim_same_padding_and_small_images():
    a = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="smaller than"):
        ssim(a, a)
    assert ssim(a, a, padding="same").item() == pytest.approx(1.0)
    wide = torch.rand(1, 3, 16, 8, dtype=torch.float64)  # tall enough, too narrow
    with pytest.raises(ValueError, match="images of 16x8 are smaller than the 11x11 SSIM window"):
        ssim(wide, wide)
    with pytest.raises(ValueError, match="padding must be 'valid' or 'same', got 'reflect'"):
        ssim(a, a, padding="reflect")


def test_the_ssim_window_is_opencvs_gaussian_kernel_and_even_ones_are_symmetric():
    import cv2

    from mnemovision.vision.metrics.psnr_ssim import gaussian_window

    for size in (7, 11):
        np.testing.assert_allclose(gaussian_window(size, 1.5).numpy(), cv2.getGaussianKernel(size, 1.5).ravel(), rtol=1e-12)
    even = gaussian_window(4, 1.5)  # centred between the two middle taps
    assert torch.equal(even, even.flip(0)) and float(even.sum()) == pytest.approx(1.0)


def test_luma_is_basicsrs_float32_chain_to_the_bit():
    """BasicSR's ``to_y_channel``: [0, 1] float32, the weighted sum plus 16, divided by 255 (its output
    range conversion) and multiplied back by 255, every step in float32 (done here channel by channel
    in the same order); the divide-and-multiply moves some pixels by a float32 step."""
    img = photo()
    unit = img.astype(np.float32) / np.float32(255.0)
    w = np.array([65.481, 128.553, 24.966], np.float32)
    summed = unit[..., 0] * w[0] + unit[..., 1] * w[1] + unit[..., 2] * w[2] + np.float32(16.0)
    want = summed / np.float32(255.0) * np.float32(255.0)
    assert np.array_equal(rgb_to_y(img), want.astype(np.float64))
    assert (want != summed).any()  # the round trip is visible: the test can tell the two apart


def test_grey_images_are_scored_and_their_luma_is_refused():
    """[H, W] images are one channel; floats below -1 are refused like those above 2; an empty image
    is named by its size."""
    grey, other = photo("camera"), noisy(photo("camera"), 6.0)
    expected = 10 * math.log10(255**2 / np.mean((grey.astype(np.float64) - other) ** 2))
    assert image_psnr(other, grey) == pytest.approx(expected, abs=1e-10)
    assert image_ssim(other, grey) == image_ssim(other[..., None], grey[..., None])
    with pytest.raises(ValueError, match="y_channel=True needs RGB images, got 1 channels"):
        image_psnr(other, grey, y_channel=True)
    with pytest.raises(ValueError, match=r"pred is float with values in -1\.5\.\.-0\.5;"):
        image_psnr(grey / 255.0 - 1.5, grey)
    empty = np.zeros((0, 4, 3), np.float32)
    with pytest.raises(ValueError, match="crop_border=0 leaves nothing of a 0x4 image"):
        image_psnr(empty, empty)


def test_ssim_gradcheck():
    torch.manual_seed(0)
    a = torch.rand(1, 2, 12, 12, dtype=torch.float64, requires_grad=True)
    b = torch.rand(1, 2, 12, 12, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: ssim(x, b, window_size=5, padding="same"), (a,))
    assert torch.autograd.gradcheck(lambda x: psnr(x, b), (a,))


def test_compare_images_reports_every_metric():
    img = photo()[:64, :64]
    out = compare_images(noisy(img, 6.0), img, crop_border=2)
    assert set(out) == {"psnr", "ssim", "psnr_y", "ssim_y"}
    assert 25 < out["psnr"] < 40 and 0.5 < out["ssim"] < 1.0
    with pytest.raises(ValueError, match="differ in size"):
        compare_images(img, img[:32])


def test_compare_images_values_are_the_single_metrics_and_lpips_gets_float_nchw():
    img = photo()[:48, :48]
    pred = noisy(img, 8.0)
    seen = []

    def stand_in(a, b):  # an LPIPS module's call: [1, 3, H, W] floats in [0, 1]
        seen.append((a.shape, a.dtype, float(a.max()), float((a - b).abs().mean())))
        return torch.tensor([0.25])

    out = compare_images(pred, img, crop_border=3, lpips_model=stand_in)
    assert out["psnr"] == image_psnr(pred, img, 3) and out["ssim"] == image_ssim(pred, img, 3)
    assert out["psnr_y"] == image_psnr(pred, img, 3, y_channel=True) and out["ssim_y"] == image_ssim(pred, img, 3, y_channel=True)
    assert out["lpips"] == 0.25
    (shape, dtype, peak, gap), = seen
    assert shape == (1, 3, 48, 48) and dtype == torch.float32 and peak <= 1.0
    assert gap == pytest.approx(np.abs(pred.astype(float) - img).mean() / 255, rel=1e-5)
    rgba = np.dstack([img, img[..., :1]])
    with pytest.raises(ValueError, match=r"images must be \[H, W, 3\] RGB, got \(48, 48, 4\)"):
        compare_images(rgba, rgba)


def test_compare_videos_over_the_common_length(tmp_path, monkeypatch):
    from mnemovision.vision.io import read_video, write_video
    from mnemovision.vision.metrics import compare_videos

    frames = np.stack([np.roll(photo()[::4, ::4], 3 * t, axis=1)[:64, :96] for t in range(4)])
    write_video(tmp_path / "ref.mp4", frames[:3], fps=12, crf=0)
    write_video(tmp_path / "pred.mp4", [noisy(f, 6.0, seed=t) for t, f in enumerate(frames)], fps=30, crf=10)
    result = compare_videos(tmp_path / "pred.mp4", tmp_path / "ref.mp4")
    assert result.frames == 3 and result.fps == pytest.approx(12.0)  # the shorter video's length, the reference's rate
    pred, _ = read_video(tmp_path / "pred.mp4")
    ref, _ = read_video(tmp_path / "ref.mp4")
    np.testing.assert_allclose(result.psnr, [image_psnr(a, b) for a, b in zip(pred, ref)])
    np.testing.assert_allclose(result.ssim, [image_ssim(a, b) for a, b in zip(pred, ref)])
    assert result.mean_psnr == pytest.approx(np.mean(result.psnr)) and result.mean_ssim == pytest.approx(np.mean(result.ssim))
    assert compare_videos(tmp_path / "pred.mp4", tmp_path / "ref.mp4", max_frames=2).frames == 2
    same = compare_videos(tmp_path / "ref.mp4", tmp_path / "ref.mp4")
    assert same.mean_psnr == float("inf") and same.mean_ssim == pytest.approx(1.0)
    mixed = type(result)(psnr=[30.0, float("inf"), 40.0], ssim=[0.9, 1.0, 0.95], frames=3, fps=12.0)
    assert mixed.mean_psnr == 35.0  # identical frames are left out of the mean
    monkeypatch.setattr("mnemovision.vision.io.video.iter_video", lambda path: iter(()))
    with pytest.raises(ValueError, match="no frames to compare"):
        compare_videos(tmp_path / "pred.mp4", tmp_path / "ref.mp4")
    monkeypatch.undo()
    write_video(tmp_path / "small.mp4", frames[:2, :32, :48], fps=12)
    with pytest.raises(ValueError, match=r"small.mp4: frame 0 is 48x32, but .*ref.mp4 has 96x64"):
        compare_videos(tmp_path / "small.mp4", tmp_path / "ref.mp4")


# ---------------------------------------------------------------------------------------------
# LPIPS


def write_official_layout(tmp_path, net="alex"):
    """Checkpoints in the official layouts: the lpips package's real linear weights, and a torchvision
    backbone checkpoint (random weights: the ImageNet ones would need a download)."""
    import lpips  # dev extra: the reference implementation
    from torchvision import models

    torch.manual_seed(0)
    backbone = models.alexnet(weights=None) if net == "alex" else models.vgg16(weights=None)
    backbone_path = tmp_path / f"{net}_backbone.pth"
    torch.save(backbone.state_dict(), backbone_path)
    from pathlib import Path

    lin_path = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    return backbone, backbone_path, lin_path


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_the_reference_implementation(tmp_path, net):
    pytest.importorskip("lpips")
    import lpips

    backbone, backbone_path, lin_path = write_official_layout(tmp_path, net)
    ours = LPIPS.from_pretrained(lin_path, backbone_path, net=net)
    assert not any(p.requires_grad for p in ours.parameters())  # a metric and a loss: no weight gradients
    reference = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    # Put the same backbone into the reference: its slices keep torchvision's layer indices.
    features = {f"{i}.{name}": v for i, layer in enumerate(backbone.features) for name, v in layer.state_dict().items()}
    for slice_module in (reference.net.slice1, reference.net.slice2, reference.net.slice3, reference.net.slice4, reference.net.slice5):
        for key, value in slice_module.state_dict().items():
            value.copy_(features[key])
    torch.manual_seed(1)
    a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = reference(a, b, normalize=True).flatten()
        got = ours(a, b)
        expected_signed = reference(a * 2 - 1, b * 2 - 1).flatten()  # inputs already in [-1, 1]
        got_signed = ours(a * 2 - 1, b * 2 - 1, normalize=False)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_signed.numpy(), expected_signed.numpy(), rtol=1e-5, atol=1e-6)
    assert torch.all(ours(a, a) == 0)


def test_lpips_of_vanishing_features_is_zero_not_nan(tmp_path):
    """A backbone whose activations are all zero (zero weights): the unit normalisation's 1e-10
    keeps the distance at 0 (the reference's epsilon too) instead of 0 / 0."""
    pytest.importorskip("lpips")
    backbone, backbone_path, lin_path = write_official_layout(tmp_path)
    torch.save({k: torch.zeros_like(v) for k, v in backbone.state_dict().items()}, backbone_path)
    ours = LPIPS.from_pretrained(lin_path, backbone_path)
    with torch.no_grad():
        assert ours(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)).tolist() == [0.0]


def test_lpips_never_downloads_and_says_what_it_needs(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        LPIPS.from_pretrained(None, None)
    pytest.importorskip("lpips")
    _, backbone_path, lin_path = write_official_layout(tmp_path)
    bad = tmp_path / "bad_lin.pth"
    state = torch.load(lin_path, map_location="cpu", weights_only=True)
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, bad)
    with pytest.raises(CheckpointError, match="unexpected keys.*extra.weight"):
        LPIPS.from_pretrained(bad, backbone_path)
    del state["extra.weight"], state["lin4.model.1.weight"]
    torch.save(state, bad)
    with pytest.raises(CheckpointError, match=r"bad_lin.pth: LPIPS linear layers: missing keys \['lin4.model.1.weight'\]"):
        LPIPS.from_pretrained(bad, backbone_path)
    with pytest.raises(FileNotFoundError, match=r"backbone_path=.*nowhere.pth'\) must point to torchvision's ImageNet vgg16 weights"):
        LPIPS.from_pretrained(lin_path, tmp_path / "nowhere.pth", net="vgg")
    backbone = torch.load(backbone_path, map_location="cpu", weights_only=True)
    del backbone["classifier.6.bias"]  # the whole torchvision checkpoint is loaded strictly
    torch.save(backbone, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="partial.pth.*classifier.6.bias"):
        LPIPS.from_pretrained(lin_path, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="net must be one of \\['alex', 'vgg'\\], got 'squeeze'"):
        LPIPS(net="squeeze")
    with pytest.raises(ValueError, match=r"pred and target must both be \[B, 3, H, W\], got \(1, 1, 8, 8\) and \(1, 1, 8, 8\)"):
        LPIPS()(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
