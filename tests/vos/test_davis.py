"""Real DAVIS-2016 frames: the command line runs both baselines and scores them like the toolkit."""

import json
import shutil
import subprocess
import sys

import av
import numpy as np
import pytest

from mnemovision.vision.io import read_mask
from mnemovision.vos.metrics import evaluate_folders

pytestmark = pytest.mark.data
SEQUENCES = ("blackswan", "dog")
FRAMES = 12


@pytest.fixture(scope="module")
def davis_subset(tmp_path_factory):
    from tests.conftest import REPO_ROOT
    from mnemovision.vision.data import shared_data_path

    root = shared_data_path("vos", "davis2016", start=REPO_ROOT)
    if root is None:
        pytest.skip("shared data vos/davis2016 not found (set MNEMOVISION_DATA or place it at ../shared/data)")
    out = tmp_path_factory.mktemp("davis")
    for seq in SEQUENCES:
        for kind, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
            (out / kind / seq).mkdir(parents=True)
            for t in range(FRAMES):
                shutil.copy(root / kind / seq / f"{t:05d}.{ext}", out / kind / seq / f"{t:05d}.{ext}")
    return out


def run(*args, cwd):
    out = subprocess.run([sys.executable, "-m", "mnemovision", "vos", *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_ground_truth_scores_perfectly(davis_subset):
    report = evaluate_folders(davis_subset / "Annotations", davis_subset)
    assert report["J"] == 1.0 and report["F"] == 1.0 and set(report["per_sequence"]) == set(SEQUENCES)


def test_baselines_run_and_score_on_real_frames(davis_subset, tmp_path):
    scores = {}
    for model in ("copy-first", "flow"):
        first_only = tmp_path / f"first_{model}"
        for seq in SEQUENCES:  # semi-supervised: only the first frame's mask is given
            (first_only / seq).mkdir(parents=True)
            shutil.copy(davis_subset / "Annotations" / seq / "00000.png", first_only / seq / "00000.png")
        out = tmp_path / model
        run("run", "--frames", str(davis_subset / "JPEGImages"), "--masks", str(first_only), "--out", str(out), "--model", model, cwd=tmp_path)
        assert read_mask(out / "dog" / "00011.png").shape == (480, 854)
        with av.open(str(out / "blackswan.mp4")) as container:
            assert sum(1 for _ in container.decode(video=0)) == FRAMES
        run("eval", "--pred", str(out), "--gt", str(davis_subset), "--json", str(out / "scores.json"), cwd=tmp_path)
        scores[model] = json.loads((out / "scores.json").read_text())
        assert (out / "global_results.csv").exists() and (out / "per-sequence_results.csv").read_text().count("\n") == 3
    # Measured on these 12 frames: flow tracks both animals closely; copying the first mask drifts.
    assert scores["flow"]["JF"] > scores["copy-first"]["JF"]
    assert scores["flow"]["J"] > 0.75, scores["flow"]
    assert 0 < scores["copy-first"]["J"] < scores["flow"]["J"]
    assert set(scores["flow"]["per_sequence"]) == set(SEQUENCES)
    assert np.isfinite(scores["flow"]["F_decay"])


def test_objects_join_mid_video_on_the_real_judo_prompts(tmp_path):
    from tests.conftest import REPO_ROOT
    from mnemovision.vision.data import shared_data_path
    from mnemovision.vos.api import load_model
    from mnemovision.vos.run import run_sequence, sequences_in

    root = shared_data_path("vos", "judo_prompts", start=REPO_ROOT)
    if root is None:
        pytest.skip("shared data vos/judo_prompts not found")
    (seq,) = sequences_in(root / "images", root / "masks")
    assert sorted(seq.annotations) == [0, 5, 8, 13]
    with pytest.warns(UserWarning, match="00005.png: mask is 853x480, its frame 854x480"):
        masks = run_sequence(load_model("flow"), seq, tmp_path)
    present = [sorted(int(i) for i in np.unique(m) if i) for m in masks]
    assert present[0] == [1] and present[4] == [1]
    assert present[5] == [1, 2] and present[8] == [1, 2, 3] and present[13] == [1, 2, 3, 4] and present[15] == [1, 2, 3, 4]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the frame-5 mask is a pixel narrow (warned above)
        for t, object_id in ((5, 2), (8, 3), (13, 4)):  # each prompt's object is exactly its mask on its frame
            assert np.array_equal(masks[t] == object_id, seq.mask(t, masks.shape[1:]) == object_id)
    assert (tmp_path / "judo.mp4").exists() and len(list((tmp_path / "judo").glob("*.png"))) == 16


def test_cli_adapts_jointformer_and_refuses_adaptation_for_baselines(davis_subset, tmp_path):
    from mnemovision.vos.api import SHIPPED_JOINTFORMER

    first_only = tmp_path / "first"
    (first_only / "dog").mkdir(parents=True)
    shutil.copy(davis_subset / "Annotations" / "dog" / "00000.png", first_only / "dog" / "00000.png")
    args = ["--frames", str(davis_subset / "JPEGImages" / "dog"), "--masks", str(first_only / "dog"), "--out", str(tmp_path / "out")]
    refused = subprocess.run([sys.executable, "-m", "mnemovision", "vos", "run", *args, "--model", "flow", "--adapt-steps", "2"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "mnemovision: error: --adapt-steps applies to JointFormer" in refused.stderr
    if not SHIPPED_JOINTFORMER.exists():
        pytest.skip(f"{SHIPPED_JOINTFORMER} not built")
    run("run", *args, "--model", "jointformer", "--adapt-steps", "2", cwd=tmp_path)
    written = sorted((tmp_path / "out").rglob("*.png"))
    assert len(written) == FRAMES and read_mask(written[-1]).shape == (480, 854)
