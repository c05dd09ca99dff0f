"""The JointFormer-tiny that ships in the package (trained with jointformer_tiny_s0 + _s02): it loads
with its stored settings (first-frame adaptation included) and tracks objects it never saw."""

import numpy as np
import pytest

from mnemovision.vos.api import SHIPPED_JOINTFORMER, VOSSession, load_model
from mnemovision.vos.clips import SyntheticClips, denormalise

pytestmark = pytest.mark.skipif(not SHIPPED_JOINTFORMER.exists(), reason=f"{SHIPPED_JOINTFORMER} not built")


def run(model_name: str, frames, first_mask, **options) -> list[np.ndarray]:
    session = VOSSession(load_model(model_name, **options))
    session.add_mask(0, first_mask)
    return [session.step(frame) for frame in frames]


def test_shipped_file_is_small_and_carries_its_settings():
    from mnemovision.vos.jointformer_model import inference_settings

    assert SHIPPED_JOINTFORMER.stat().st_size <= 10 * 2**20
    settings = inference_settings(SHIPPED_JOINTFORMER)
    assert settings["internal_size"] == 160 and settings["adapt_steps"] == 150  # the stage-2 training height
    model = load_model("jointformer")
    assert model.internal_size == 160 and model.adapt_steps == 150 and sum(p.numel() for p in model.net.parameters()) < 1.5e6


def test_tracks_an_unseen_synthetic_clip_without_adaptation():
    # seed 7 is outside the training seeds (0 and 1); 16 frames of a textured blob over a moving photo
    clip = SyntheticClips(length=1, size=(160, 288), frames=16, objects=1, motion=0.15, seed=7)[0]
    frames = denormalise(clip["inputs"])
    truth = clip["data_samples"].numpy()[:, 0] > 0.5
    scores = {}
    for name, options in (("jointformer", {"adapt_steps": 0}), ("copy-first", {})):
        preds = run(name, frames, truth[0].astype(np.uint8), **options)
        scores[name] = np.mean([(p.astype(bool) & g).sum() / (p.astype(bool) | g).sum() for p, g in zip(preds[1:], truth[1:])])
    assert scores["jointformer"] > 0.85 and scores["jointformer"] > scores["copy-first"] + 0.3, scores  # measured 0.91 vs 0.48


@pytest.mark.data
def test_adaptation_lifts_it_on_a_held_out_davis_sequence(shared_data):
    from mnemovision.vos.data import davis_sequence
    from mnemovision.vos.metrics import evaluate_sequence, summarize

    seq = davis_sequence(shared_data("vos", "davis2016"), "car-shadow")  # held out from stage 2
    frames = [seq.frame(t) for t in range(25)]
    truth = np.stack([seq.mask(t, frames[0].shape[:2]) for t in range(25)])
    runs = {"adapted": ("jointformer", {}), "plain": ("jointformer", {"adapt_steps": 0}), "copy-first": ("copy-first", {})}
    jf = {key: summarize(evaluate_sequence("car-shadow", truth, np.stack(run(name, frames, truth[0], **options))))["JF"] for key, (name, options) in runs.items()}
    # measured: adapted 0.84 (0.71-0.85 over dream seeds in an earlier variant), plain 0.54, copy-first 0.37, flow 0.73
    assert jf["plain"] > jf["copy-first"] + 0.1, jf
    assert jf["adapted"] > jf["plain"] + 0.1, jf
