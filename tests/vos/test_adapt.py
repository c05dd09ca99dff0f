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
