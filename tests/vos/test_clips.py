"""Training clips: rectangular sizes, per-clip speed ranges, crops and mirroring that keep frames and
masks aligned."""

import numpy as np
import pytest

from mnemovision.vos.clips import IMAGENET_MEAN, IMAGENET_STD, SyntheticClips, VideoClips


def test_synthetic_clips_are_rectangular_deterministic_and_move():
    data = SyntheticClips(length=4, size=(48, 80), frames=4, objects=2, motion=(0.2, 0.6), seed=3)
    a, b = data[1], data[1]
    assert a["inputs"].shape == (4, 3, 48, 80) and a["data_samples"].shape == (4, 2, 48, 80)
    assert np.array_equal(a["inputs"].numpy(), b["inputs"].numpy())  # a pure function of (seed, index)
    masks = a["data_samples"].numpy()
    assert set(np.unique(masks)) <= {0.0, 1.0} and (masks.sum(1) <= 1).all()  # occlusion: one owner per pixel
    assert masks[0].sum() > 0.05 * 48 * 80
    moved = [np.logical_xor(masks[0, k], masks[-1, k]).mean() for k in range(2)]
    assert max(moved) > 0.01  # objects move between the first and last frame


def test_speed_range_spans_slow_and_fast_clips():
    still = SyntheticClips(length=1, size=48, frames=3, objects=1, motion=(0.0, 0.0), seed=1)[0]["data_samples"].numpy()
    assert np.array_equal(still[0], still[-1])
    fast = SyntheticClips(length=1, size=48, frames=3, objects=1, motion=(1.0, 1.0), seed=1)[0]["data_samples"].numpy()
    assert not np.array_equal(fast[0], fast[-1])


@pytest.mark.parametrize("options, message", [
    (dict(size=0), "SyntheticClips.size must be an int >= 1, got 0"),  # once a ZeroDivisionError
    (dict(frames=0), "SyntheticClips.frames must be an int >= 1, got 0"),  # once empty clips
    (dict(objects=0), "SyntheticClips.objects must be an int >= 1, got 0"),
    (dict(motion=(0.6, 0.1)), "low <= high"),  # once numpy's "high - low < 0"
    (dict(motion=float("nan")), "SyntheticClips.motion must be a finite number >= 0, got nan"),
])
def test_clip_options_out_of_range_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        SyntheticClips(length=1, **options)


def test_the_clip_loss_refuses_clips_it_cannot_learn_from():
    import torch

    from mnemovision.vos.losses import clip_loss
    from mnemovision.vos.models import build_jointformer

    net = build_jointformer("tiny")
    with pytest.raises(ValueError, match="T >= 2 frames, K >= 1 objects and H, W multiples of 16 .the network's stride., got T=1, K=1, 32x32"):
        clip_loss(net, torch.zeros(1, 1, 3, 32, 32), torch.zeros(1, 1, 1, 32, 32), 1.0)  # once a loss without gradient
    with pytest.raises(ValueError, match="got T=2, K=1, 40x32"):
        clip_loss(net, torch.zeros(1, 2, 3, 40, 32), torch.zeros(1, 2, 1, 40, 32), 1.0)
    with pytest.raises(ValueError, match="frames .B, T, 3, H, W. and masks .B, T, K, H, W., got .1, 2, 3, 32, 32. and .1, 3, 1, 32, 32."):
        clip_loss(net, torch.zeros(1, 2, 3, 32, 32), torch.zeros(1, 3, 1, 32, 32), 1.0)
    loss = clip_loss(net, torch.zeros(1, 2, 3, 32, 32), torch.zeros(1, 2, 1, 32, 32), 1.0)
    assert loss["loss_ce"].requires_grad


def write_bright_box_video(root, name="box", frames=6, size=(80, 140)):
    """A DAVIS-format video: a white box on black, left of centre, drifting right a pixel a frame."""
    from PIL import Image

    (root / "JPEGImages" / name).mkdir(parents=True)
    (root / "Annotations" / name).mkdir(parents=True)
    for t in range(frames):
        mask = np.zeros(size, np.uint8)
        mask[20:60, 15 + t : 55 + t] = 1
        Image.fromarray(np.repeat(mask[..., None] * 255, 3, axis=2)).save(root / "JPEGImages" / name / f"{t:05d}.jpg", quality=95)
        Image.fromarray(mask).save(root / "Annotations" / name / f"{t:05d}.png")


def test_video_clips_crop_and_mirror_frames_and_masks_together(tmp_path):
    write_bright_box_video(tmp_path)
    centres = []
    for min_crop in (1.0, 0.6):
        data = VideoClips(root=str(tmp_path), length=16, size=(48, 80), frames=3, objects=1, max_jump=2, min_crop=min_crop, seed=0)
        for i in range(16):
            clip = data[i]
            assert clip["inputs"].shape == (3, 3, 48, 80) and clip["data_samples"].shape == (3, 1, 48, 80)
            grey = (clip["inputs"].numpy() * IMAGENET_STD[None, :, None, None] + IMAGENET_MEAN[None, :, None, None]).mean(1)
            inside = clip["data_samples"].numpy()[:, 0] > 0.5
            assert inside.any(axis=(1, 2)).all()
            assert grey[inside].mean() > 0.8 and grey[~inside].mean() < 0.2  # the mask sits on the box in every frame
            centres.append(np.nonzero(inside[0])[1].mean() / 80)
    assert min(centres) < 0.45 and max(centres) > 0.55  # mirrored clips put the box right of centre


def test_mixed_clips_interleave_real_and_synthetic(tmp_path):
    from mnemovision.vos.clips import MixedClips

    write_bright_box_video(tmp_path)
    video = dict(root=str(tmp_path), size=(48, 80), frames=3, objects=1, max_jump=2)
    mixed = MixedClips(video=video, synthetic=dict(size=(48, 80), frames=3, objects=1, photos=("astronaut",)), length=6, every=3)
    for i in range(6):
        real = VideoClips(length=6, **video)[i]["inputs"].numpy()
        assert np.array_equal(mixed[i]["inputs"].numpy(), real) == (i % 3 != 2), i
    with pytest.raises(ValueError, match="differ in 'frames'"):
        MixedClips(video=video, synthetic=dict(size=(48, 80), frames=4, objects=1, photos=("astronaut",)))
