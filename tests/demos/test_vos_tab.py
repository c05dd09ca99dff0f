"""The video segmentation tab's functions, without a browser."""

import zipfile
from pathlib import Path

import av
import numpy as np
import pytest

from mnemovision.demos import vos_tab
from mnemovision.vos.clips import SyntheticClips


def bundled_truth() -> np.ndarray:
    """[24, 192, 192] bool: the object's masks in the bundled clip (same generator and seed)."""
    return SyntheticClips(length=1, size=192, frames=24, objects=1, motion=2.0 / 24, seed=7)[0]["data_samples"][:, 0].numpy() > 0.5


def test_bundled_clip_is_deterministic_and_moves():
    a, b = vos_tab.bundled_clip(), vos_tab.bundled_clip()
    assert a.shape == (24, 192, 192, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert np.abs(a[0].astype(int) - a[-1].astype(int)).mean() > 5


def test_painted_strokes_propagate_into_masks_and_a_video(tmp_path):
    frames = vos_tab.bundled_clip()
    truth = bundled_truth()
    layer = np.zeros((192, 192, 4), np.uint8)
    layer[truth[0], 3] = 255  # a painting that covers the object exactly
    mask = vos_tab.painted_mask({"background": frames[0], "layers": [layer], "composite": frames[0]}, (192, 192))
    assert np.array_equal(mask, truth[0])
    video, archive, summary = vos_tab.propagate(frames, mask, "flow", tmp_path)
    assert "24 frames" in summary
    with zipfile.ZipFile(archive) as handle:
        assert len(handle.namelist()) == 24
        assert handle.namelist() == [f"{t:05d}.png" for t in range(24)]  # flat names, not the run folder's path
    with av.open(video) as container:
        decoded = [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(video=0)]
    assert len(decoded) == 24
    tint = np.abs(decoded[0] - frames[0].astype(int)).mean(-1)
    assert tint[mask].mean() > 20 and tint[~mask].mean() < 4  # the overlay: frame 0's object tinted, the rest as it was
    from mnemovision.vision.io import read_mask

    np.testing.assert_array_equal(read_mask(tmp_path / "masks" / "00000.png"), mask.astype(np.uint8))  # the painting is frame 0's mask
    last = read_mask(tmp_path / "masks" / "00023.png") == 1
    iou = (last & truth[-1]).sum() / (last | truth[-1]).sum()
    assert iou > 0.6  # flow follows the deforming object through 23 frames (measured 0.75; copying the first mask: 0.24)


def test_empty_painting_and_missing_sam_are_explained(tmp_path, monkeypatch):
    assert not vos_tab.painted_mask(None, (4, 4)).any()
    second = np.zeros((4, 4, 4), np.uint8)
    second[3, 3, 3] = 255
    strokes = vos_tab.painted_mask({"layers": [None, second]}, (4, 4))  # a None layer once failed in numpy's comparison
    assert strokes.sum() == 1 and strokes[3, 3]
    monkeypatch.delenv(vos_tab.SAM_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="MNEMOVISION_SAM_CHECKPOINT"):
        vos_tab.refine_with_sam(np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), bool))
    monkeypatch.setenv(vos_tab.SAM_ENV, str(tmp_path / "sam_vit_b.pth"))  # set, but no such file
    with pytest.raises(FileNotFoundError, match="MNEMOVISION_SAM_CHECKPOINT"):
        vos_tab.refine_with_sam(np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), bool))


def test_the_buttons_explain_what_is_missing_and_what_failed(tmp_path, monkeypatch):
    frames, editor, status = vos_tab.first_frame(None, use_bundled=True)
    assert frames.shape == (24, 192, 192, 3) and np.array_equal(editor["background"], frames[0]) and status.startswith("24 frames, 192x192")
    assert vos_tab.first_frame(str(tmp_path / "none.mp4"), use_bundled=False)[2].startswith("**Error**: ")
    painting = {"layers": [np.pad(np.full((10, 10, 4), 255, np.uint8), ((90, 92), (90, 92), (0, 0)))]}
    assert vos_tab.segment(None, painting, "flow", False, tmp_path) == (None, None, "Load a video (or the bundled clip) first.")
    assert vos_tab.segment(frames, {"layers": []}, "flow", False, tmp_path) == (None, None, "Paint the object on the first frame first.")
    monkeypatch.delenv(vos_tab.SAM_ENV, raising=False)
    video, archive, status = vos_tab.segment(frames[:3], painting, "flow", True, tmp_path)
    assert (video, archive) == (None, None) and status.startswith("**Error**: SAM needs a local checkpoint")
    video, archive, status = vos_tab.segment(frames[:3], painting, "unet", False, tmp_path)
    assert (video, archive) == (None, None) and "unknown VOS model 'unet'" in status
    first = vos_tab.segment(frames[:3], painting, "copy-first", False, tmp_path)
    second = vos_tab.segment(frames[:3], painting, "copy-first", False, tmp_path)
    assert "3 frames segmented" in first[2] and Path(first[1]).parent != Path(second[1]).parent  # each run its own folder


def test_a_model_that_adapts_first_says_so_before_propagating(tmp_path, monkeypatch):
    from mnemovision.vos import api

    make = api.load_model

    def adapting(name, **options):
        model = make("copy-first")
        model.adapt_steps = 5  # what the shipped JointFormer reports
        return model

    monkeypatch.setattr(vos_tab.api, "load_model", adapting)
    frames, calls = vos_tab.bundled_clip(n_frames=3, size=32), []
    vos_tab.propagate(frames, np.ones((32, 32), bool), "jointformer", tmp_path, progress=lambda done, desc: calls.append((done, desc)))
    assert calls[0] == ((0, 3), "adapting the model to the first frame") and calls[1:] == [((t, 3), "propagating") for t in (1, 2, 3)]


def test_jointformer_choices_with_and_without_adaptation(tmp_path):
    from mnemovision.vos.api import SHIPPED_JOINTFORMER, load_model

    if not SHIPPED_JOINTFORMER.exists():
        pytest.skip(f"{SHIPPED_JOINTFORMER} not built")
    name, options = vos_tab.MODEL_CHOICES["jointformer"]
    assert load_model(name, **options).adapt_steps == 150
    frames = vos_tab.bundled_clip()
    truth = bundled_truth()
    calls = []
    _, archive, summary = vos_tab.propagate(frames, truth[0], "jointformer (no adaptation)", tmp_path, progress=lambda done, desc: calls.append(desc))
    assert "24 frames" in summary and "adapting the model to the first frame" not in calls and len(calls) == 24
    with zipfile.ZipFile(archive) as handle:
        assert len(handle.namelist()) == 24


def test_uploaded_videos_are_cut_to_the_frame_cap_and_shrunk_to_the_side_cap(tmp_path, monkeypatch):
    import cv2

    from mnemovision.vision.io import write_video

    frames = vos_tab.bundled_clip(n_frames=8, size=128)
    wide = np.concatenate([frames, frames[:, :, :64]], axis=2)[:, :96]  # [8, 96, 192, 3]
    write_video(tmp_path / "clip.mp4", wide, fps=10, crf=0)
    monkeypatch.setattr(vos_tab, "MAX_FRAMES", 5)
    monkeypatch.setattr(vos_tab, "MAX_SIDE", 96)
    loaded = vos_tab.load_frames(str(tmp_path / "clip.mp4"), use_bundled=False)
    assert loaded.shape == (5, 48, 96, 3) and loaded.dtype == np.uint8  # the longer side 192 -> 96, the aspect kept
    want = np.stack([cv2.resize(f, (96, 48), interpolation=cv2.INTER_AREA) for f in wide[:5]])
    assert np.abs(loaded.astype(int) - want.astype(int)).mean() < 2.0  # lossless H.264 from RGB: colour rounding only
    monkeypatch.setattr(vos_tab, "MAX_SIDE", 480)
    assert vos_tab.load_frames(str(tmp_path / "clip.mp4"), use_bundled=False).shape == (5, 96, 192, 3)  # small enough: untouched
    assert vos_tab.load_frames(str(tmp_path / "clip.mp4"), use_bundled=True).shape == (24, 192, 192, 3)
    assert vos_tab.load_frames(None, use_bundled=False).shape == (24, 192, 192, 3)


def test_painted_layers_of_any_kind_and_size_become_one_mask():
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[0, 0, 2] = 9  # any painted channel
    grey = np.zeros((4, 6), np.uint8)
    grey[3, 5] = 1
    small = np.zeros((2, 3, 4), np.uint8)
    small[1, 0, 3] = 255  # half size: one pixel covers a 2 x 2 block
    small[0, 2, :3] = 200  # colour without alpha is not paint
    mask = vos_tab.painted_mask({"layers": [rgb, grey, small]}, (4, 6))
    want = np.zeros((4, 6), bool)
    want[0, 0] = want[3, 5] = True
    want[2:4, 0:2] = True
    np.testing.assert_array_equal(mask, want)
