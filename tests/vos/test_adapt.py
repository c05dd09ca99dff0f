"""First-frame adaptation: clips dreamed from one annotated frame, the fine-tuning loop, and the
propagator that adapts a per-video copy of its network."""

import numpy as np
import pytest
import torch

from mnemovision.vos.adapt import adapt_jointformer, dream_clip
from mnemovision.vos.api import VOSSession
from mnemovision.vos.clips import SyntheticClips, denormalise
from mnemovision.vos.jointformer_model import JointFormerPropagator
from mnemovision.vos.models import build_jointformer


def synthetic_video(frames: int = 4, size=(48, 80), seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """[T, H, W, 3] uint8 frames and [T, H, W] bool masks of one object."""
    clip = SyntheticClips(length=1, size=size, frames=frames, objects=1, motion=0.3, seed=seed)[0]
    video = denormalise(clip["inputs"])
    return video, clip["data_samples"].numpy()[:, 0] > 0.5


def test_dream_clip_starts_at_the_frame_and_moves_each_object():
    video, masks = synthetic_video()
    frame, objects = video[0], np.stack([masks[0], np.zeros_like(masks[0])])
    objects[1, 2:10, 2:12] = True  # a second object in a corner
    objects[0, 2:10, 2:12] = False
    still, still_masks = dream_clip(frame, objects, 4, np.random.default_rng(0), speed=(0.0, 0.0))
    assert still.shape == (4, 48, 80, 3) and still.dtype == np.uint8 and still_masks.shape == (4, 2, 48, 80)
    assert set(np.unique(still_masks)) <= {0.0, 1.0}
    mirrored = not np.array_equal(still_masks[0], objects.astype(np.float32))
    expected = objects[..., ::-1] if mirrored else objects
    np.testing.assert_array_equal(still_masks[0], expected.astype(np.float32))  # speed 0: the masks stay put
    reference = (frame[:, ::-1] if mirrored else frame).astype(np.float64)
    inside = expected.any(0)
    gain = still[0][inside].astype(np.float64).mean() / reference[inside].mean()
    assert 0.85 < gain < 1.15  # the objects' pixels are the frame's, up to the brightness change
    moving, moving_masks = dream_clip(frame, objects, 4, np.random.default_rng(1), speed=(0.4, 0.4))
    for k in range(2):
        assert moving_masks[0, k].sum() > 0 and not np.array_equal(moving_masks[0, k], moving_masks[-1, k])


def test_adaptation_is_deterministic_lowers_the_loss_and_leaves_eval_mode():
    video, masks = synthetic_video()
    torch.manual_seed(0)
    base = build_jointformer("tiny")
    nets = [build_jointformer("tiny"), build_jointformer("tiny")]
    for net in nets:
        net.load_state_dict(base.state_dict())
    runs = [adapt_jointformer(net, video[0], masks[:1], (48, 80), steps=12, lr=1e-3, seed=3) for net in nets]
    assert runs[0] == runs[1] and all(np.isfinite(runs[0]))
    assert np.mean(runs[0][-4:]) < np.mean(runs[0][:4])  # it fits the dreamed clips
    assert not nets[0].training
    for (name, a), b in zip(nets[0].state_dict().items(), nets[1].state_dict().values()):
        assert torch.equal(a, b), name
    assert any(not torch.equal(a, b) for a, b in zip(nets[0].state_dict().values(), base.state_dict().values()))
    two = np.stack([masks[0], ~masks[0]])  # two objects: the blob and everything else
    assert np.isfinite(adapt_jointformer(nets[1], video[0], two, (48, 80), steps=1)).all()
    with pytest.raises(ValueError, match="multiples of 16"):
        adapt_jointformer(nets[0], video[0], masks[:1], (40, 80), steps=1)


def test_propagator_adapts_a_copy_once_per_video():
    video, masks = synthetic_video()
    torch.manual_seed(0)
    net = build_jointformer("tiny")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    model = JointFormerPropagator(net, internal_size=48, top_k=None, adapt_steps=3)
    session = VOSSession(model)
    session.add_mask(0, masks[0].astype(np.uint8))
    session.add_mask(2, masks[2].astype(np.uint8) * 2)  # a second object joins: no second adaptation
    session.step(video[0])
    adapted, seconds = session.state.net, session.state.adapt_seconds
    assert adapted is not None and adapted is not net and seconds > 0
    for frame in video[1:]:
        session.step(frame)
    assert session.state.net is adapted and session.state.adapt_seconds == seconds
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key  # the shared network is untouched
    session.reset()
    assert session.state.net is None
    with pytest.raises(ValueError, match="adapt_steps"):
        JointFormerPropagator(net, adapt_steps=-1)


def two_tone_frame(size=(32, 48)) -> tuple[np.ndarray, np.ndarray]:
    """A flat grey-50 frame with a bright (200) square object and its [1, H, W] mask."""
    frame = np.full((*size, 3), 50, np.uint8)
    frame[8:20, 6:18] = 200
    masks = np.zeros((1, *size), np.float32)
    masks[0, 8:20, 6:18] = 1.0
    return frame, masks


def test_dream_clip_brightness_is_one_gain_and_bias_per_frame_within_ten_percent_and_ten_levels():
    frame, masks = two_tone_frame()
    gains, biases, mirrors = [], [], []
    for seed in range(6):
        clip, clip_masks = dream_clip(frame, masks, 4, np.random.default_rng(seed), speed=(0.0, 0.0))
        mirrored = not np.array_equal(clip_masks[0, 0], masks[0])
        mirrors.append(mirrored)
        np.testing.assert_array_equal(clip_masks[0, 0], masks[0, :, ::-1] if mirrored else masks[0])
        for image, mask in zip(clip.astype(np.float64), clip_masks[:, 0] > 0.5):
            inside, outside = np.unique(image[mask]), np.unique(image[24:])  # rows 24+: away from the inpainted patch
            assert len(inside) == 1 and len(outside) == 1  # the whole frame shares one gain and one bias
            gain = (inside[0] - outside[0]) / 150
            gains.append(gain)
            biases.append(outside[0] - 50 * gain)
        assert len(set(np.round(gains[-4:], 3))) > 1  # each frame of the clip its own gain, not one per clip
    assert 0.89 <= min(gains) < 0.95 and 1.05 < max(gains) <= 1.11  # uint8 truncation: about 1/150 in gain
    assert -11.5 <= min(biases) < -4 and 4 < max(biases) <= 11.5
    assert any(mirrors) and not all(mirrors)  # mirrored half of the time, masks with the frame


def test_dream_clip_takes_soft_masks_at_one_half_and_inpaints_what_the_objects_leave():
    frame, masks = two_tone_frame()
    halo = np.zeros_like(masks)
    halo[0, 6:22, 4:20] = 0.4  # a soft edge, not the object
    frame[6:22, 4:20] = 170  # a blurred rim around the object
    frame[8:20, 6:18] = 200
    soft = np.maximum(masks, halo)
    still, still_masks = dream_clip(frame, soft, 2, np.random.default_rng(0), speed=(0.0, 0.0))
    assert still_masks[0, 0].sum() == masks[0].sum()  # > 0.5 is the object
    for seed in range(3):
        clip, clip_masks = dream_clip(frame, soft, 4, np.random.default_rng(seed), speed=(0.8, 0.8))
        last, covered = clip[-1].astype(np.float64), clip_masks[-1, 0] > 0.5
        assert covered.sum() > 0
        # the object moved away: where it and its rim were, the inpainted grey shows, no ghost
        assert last[~covered].max() <= 50 * 1.1 + 10 + 1, seed


class StandIn(torch.nn.Module):
    """A network for ``adapt_jointformer`` with a recording ``clip_loss``: one weight the loss moves
    with a gradient of norm 1000, one it touches with zero gradient."""

    def __init__(self):
        super().__init__()
        self.moved = torch.nn.Parameter(torch.zeros(4))
        self.idle = torch.nn.Parameter(torch.ones(4))
        self.calls = []

    def loss(self, net, inputs, targets, bootstrap_p):
        self.calls.append({"inputs": inputs.clone(), "targets": targets.clone(), "p": bootstrap_p, "grad": None if self.moved.grad is None else self.moved.grad.clone(), "training": net.training})
        ce = (self.moved * 500.0).sum() + 0.0 * self.idle.sum() + 1.0
        return {"loss_ce": ce, "loss_dice": 0.25 + (self.moved * 0).sum()}


def test_adaptation_feeds_distinct_clips_sums_both_terms_clips_gradients_and_does_not_decay(monkeypatch):
    import mnemovision.vos.adapt as adapt

    video, masks = synthetic_video()
    net = StandIn()
    monkeypatch.setattr(adapt, "clip_loss", net.loss)
    losses = adapt_jointformer(net, video[0], masks[:1], (32, 48), steps=3, lr=0.1, batch=3, frames=4, bootstrap_p=0.3, seed=2)
    assert len(net.calls) == 3 and all(call["p"] == 0.3 and call["training"] for call in net.calls)
    first = net.calls[0]
    assert first["inputs"].shape == (3, 4, 3, 32, 48) and first["targets"].shape == (3, 4, 1, 32, 48)
    assert not torch.equal(first["inputs"][0], first["inputs"][1]) and not torch.equal(first["inputs"][1], first["inputs"][2])
    assert losses[0] == pytest.approx(1.25)  # loss_ce + loss_dice at zero weights
    for call in net.calls[1:]:
        assert call["grad"].norm() == pytest.approx(1.0, rel=1e-5)  # 1000 clipped to 1
    torch.testing.assert_close(net.idle.detach(), torch.ones(4), rtol=0, atol=0)  # no weight decay
    assert not net.training


def test_adaptation_refuses_sizes_batches_and_clips_it_cannot_train_on():
    video, masks = synthetic_video()
    net = StandIn()
    for size in ((40, 48), (32, 40)):
        with pytest.raises(ValueError, match="size must be multiples of 16"):
            adapt_jointformer(net, video[0], masks[:1], size, steps=1)
    for options in (dict(steps=-1), dict(batch=0), dict(frames=1)):
        with pytest.raises(ValueError, match="need steps >= 0, batch >= 1, frames >= 2"):
            adapt_jointformer(net, video[0], masks[:1], (32, 48), **{"steps": 1, **options})
    with pytest.raises(ValueError, match="adapt_jointformer: bootstrap_p must be a number in \\(0, 1\\], got 1.5"):
        adapt_jointformer(net, video[0], masks[:1], (32, 48), steps=1, bootstrap_p=1.5)


def test_dream_clip_draws_its_speed_within_the_range_and_saturates_bright_pixels():
    frame, masks = two_tone_frame()
    differs = []
    for seed in range(4):  # the same motions (same seed), the step drawn in [0, 0.8] or fixed at 0.8
        drawn = dream_clip(frame, masks, 4, np.random.default_rng(seed), speed=(0.0, 0.8))[1]
        fastest = dream_clip(frame, masks, 4, np.random.default_rng(seed), speed=(0.8, 0.8))[1]
        differs.append(not np.array_equal(drawn, fastest))
    assert all(differs)
    bright = np.full((32, 48, 3), 250, np.uint8)  # gain up to 1.1 and bias up to +10: past 255
    clips = np.stack([dream_clip(bright, masks, 4, np.random.default_rng(seed), speed=(0.0, 0.0))[0] for seed in range(4)])
    assert clips.min() >= 250 * 0.9 - 10 - 1 and clips.max() == 255  # saturated at 255, not wrapped around to dark values


def test_dream_clip_keeps_the_background_under_faint_mask_values():
    frame, masks = two_tone_frame()
    frame[::2, 30:] = 150  # striped background on the right, rows 100 levels apart
    soft = masks.copy()
    soft[0, :, 30:] = 0.2  # a faint smear of probability there: not the object, so not inpainted
    for seed in range(2):
        clip, clip_masks = dream_clip(frame, soft, 2, np.random.default_rng(seed), speed=(0.0, 0.0))
        mirrored = clip_masks[0, 0, :, 6:18].sum() == 0
        side = (clip[0][:, :18] if mirrored else clip[0][:, 30:]).astype(np.float64)
        assert np.abs(np.diff(side.mean(axis=(1, 2)))).min() >= 100 * 0.9 - 1  # every row still differs by the gain x 100
