"""The engine's example task (``engine.examples``): photo patches, the residual denoiser, its metric."""

import numpy as np
import pytest
import torch

from mnemovision.engine.examples import DenoisePSNR, PatchDenoiseDataset, TinyDenoiser, load_photo
from mnemovision.vision.metrics import psnr


def locate(photo: np.ndarray, patch: np.ndarray) -> np.ndarray:
    """[K, 2] (y, x) of every place in ``photo`` [H, W, 3] that holds ``patch`` [p, p, 3] (several
    where the photo is flat: the astronaut's black background)."""
    p = patch.shape[0]
    found = [(y, x) for y, x in np.argwhere((photo == patch[0, 0]).all(-1)) if np.array_equal(photo[y : y + p, x : x + p], patch)]
    assert found, "the patch is nowhere in the photo"
    return np.array(found)


@pytest.mark.parametrize("split", ["train", "val"])
def test_patches_come_from_their_split_of_the_photo_at_random_places(split):
    """``train`` cuts from the left 3/4 of each photo and ``val`` from the rest (never the same
    pixels); corners are drawn over the whole allowed range; the noise has the requested sigma, is
    a pure function of (seed, split, index) and differs between the splits."""
    photo = load_photo("astronaut")  # 512 x 512
    cut = 512 * 3 // 4
    ds = PatchDenoiseDataset(photos=("astronaut",), split=split, length=24, patch=16, sigma=0.3, seed=5)
    corners = []
    for i in range(len(ds)):
        sample = ds[i]
        clean = sample["data_samples"].numpy().transpose(1, 2, 0)
        places = locate(photo, clean)
        inside = (places[:, 1] + 16 <= cut) if split == "train" else (places[:, 1] >= cut)
        assert inside.any(), places[:5]
        corners.append(places[inside][0])
        assert torch.equal(sample["inputs"], PatchDenoiseDataset(photos=("astronaut",), split=split, length=24, patch=16, sigma=0.3, seed=5)[i]["inputs"])
    ys, xs = [int(y) for y, _ in corners], [int(x) for _, x in corners]
    assert min(ys) < 128 and max(ys) > 384  # the full height, not the top rows
    assert max(xs) > 300 if split == "train" else min(xs) < 400  # and the full width of the split
    noise = torch.stack([ds[i]["inputs"] - ds[i]["data_samples"] for i in range(len(ds))])
    assert abs(float(noise.std()) - 0.3) < 0.01  # 18432 draws: 0.3 +- 0.0016 (1 sigma)
    other = PatchDenoiseDataset(photos=("astronaut",), split="val" if split == "train" else "train", length=24, patch=16, sigma=0.3, seed=5)
    assert not torch.allclose(other[0]["inputs"] - other[0]["data_samples"], noise[0])


def test_refusals_name_the_value():
    with pytest.raises(ValueError, match="photo must be one of .*got 'moon'"):
        load_photo("moon")
    with pytest.raises(ValueError, match="split must be 'train' or 'val', got 'test'"):
        PatchDenoiseDataset(photos=("astronaut",), split="test")
    model = TinyDenoiser()
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="mode='loss' needs data_samples"):
        model(x, mode="loss")
    with pytest.raises(ValueError, match="mode must be 'tensor', 'loss' or 'predict', got 'train'"):
        model(x, x, mode="train")


def test_the_metric_clamps_the_prediction_and_averages_over_patches():
    """PSNR of the prediction clamped to [0, 1] and of the noisy input, each averaged over the
    patches (not the best patch)."""
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 3, 8, 8, generator=g) * 0.8 + 0.1
    pred = gt + torch.randn(2, 3, 8, 8, generator=g) * torch.tensor([0.02, 0.05]).view(2, 1, 1, 1)
    pred[0, 0, 0, 0] = 3.0  # clamped to 1 before scoring
    noisy = gt + 0.1
    metric = DenoisePSNR()
    metric.process(None, [{"pred": p, "gt": g, "noisy": n} for p, g, n in zip(pred, gt, noisy)])
    got = metric.compute_metrics(metric.results)
    want = [float(psnr(p.clamp(0, 1), g)) for p, g in zip(pred, gt)]
    assert got["psnr"] == pytest.approx(sum(want) / 2, rel=1e-9) and abs(want[0] - want[1]) > 1.0
    assert got["psnr_noisy"] == pytest.approx(20.0, abs=1e-4)  # every noisy pixel 0.1 off: 10 log10(1 / 0.01)
