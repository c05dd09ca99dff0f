"""mmengine pieces of a Gaussian scene fit: the views as a dataset, the scene as a model whose
``train_step`` is one 3DGS step, its per-parameter optimizer, and the PSNR/SSIM metric.

Checkpoints hold everything a run needs to continue bit for bit: the Gaussians (their count changes
as density control runs; loading resizes them in place), the Adam moments, the step, the SH degree,
the density statistics and the RNG state of split sampling, the PSNR curve and the training time.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel, is_model_wrapper
from mmengine.optim import OptimWrapper
from torch.utils.data import Dataset

from mnemovision.splatting.data.scene import SceneData, View, load_scene
from mnemovision.splatting.fit import FitConfig, configure, initial_model, make_optimizer, render_view, train_iteration
from mnemovision.splatting.gaussians.density import DensityController
from mnemovision.vision.metrics import SSIM_WINDOW, psnr, ssim


def scene_background(fit: dict | None) -> tuple[float, float, float]:
    return tuple(float(v) for v in (fit or {}).get("background", FitConfig.background))


@functools.lru_cache(maxsize=4)
def _cached_scene(folder: str, downscale: float, background: tuple[float, float, float]) -> SceneData:
    return load_scene(folder, downscale=downscale, background=background)


def scene_for(data_root: str | Path, downscale: float = 1.0, background=(1.0, 1.0, 1.0), make_if_missing: bool = False) -> SceneData:
    """The scene in ``data_root`` (loaded once per process); with ``make_if_missing`` the bundled
    scene is generated there first when the folder has no ``transforms.json``."""
    folder = Path(data_root)
    if make_if_missing and not (folder / "transforms.json").exists():
        from mnemovision.splatting.data.synthetic import make_scene

        make_scene(folder)
    return _cached_scene(str(folder.resolve()), float(downscale), tuple(float(v) for v in background))


class SceneViews(Dataset):
    """The train or test views of a scene: ``{"inputs": image [H, W, 3], "data_samples": {"viewmat"
    [4, 4], "K" [3, 3], "index"}}``."""

    def __init__(self, data_root: str, split: str = "train", downscale: float = 1.0, background=(1.0, 1.0, 1.0), make_if_missing: bool = False) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        scene = scene_for(data_root, downscale, background, make_if_missing)
        self.views = scene.train if split == "train" else scene.test  # load_scene always holds out view 0
        self.metainfo = {"data_root": str(data_root), "split": split, "views": len(self.views)}

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, index: int) -> dict:
        view = self.views[index]
        return {"inputs": view.image, "data_samples": {"viewmat": view.viewmat, "K": view.K, "index": index}}


class GaussianScene(BaseModel):
    """A Gaussian scene fitted to the views in ``data_root`` with ``configure(iterations, W, H, fit)``.

    Args:
        data_root: transforms.json or COLMAP folder. downscale: image downscale factor on load.
        iterations: length of the run (sets the recipe's schedules). fit: ``FitConfig`` overrides.
        make_if_missing: generate the bundled scene in ``data_root`` if it is empty.
    """

    def __init__(self, data_root: str, downscale: float = 1.0, iterations: int = 1000, fit: dict | None = None, make_if_missing: bool = False, data_preprocessor: dict | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        scene = scene_for(data_root, downscale, scene_background(fit), make_if_missing)
        if min(scene.width, scene.height) < SSIM_WINDOW:  # found at the first validation, after training, otherwise
            raise ValueError(f"{data_root}: images of {scene.width}x{scene.height} (downscale {downscale}) are smaller than the {SSIM_WINDOW}x{SSIM_WINDOW} window of the SSIM that scores the test views; use a smaller downscale")
        self.data_root, self.downscale, self.width, self.height, self.extent = str(data_root), downscale, scene.width, scene.height, scene.extent
        self.config = configure(iterations, scene.width, scene.height, fit)
        self.gaussians = initial_model(scene, self.config)
        self.density = DensityController(self.config.density, scene.extent, seed=self.config.seed)
        self.register_buffer("background", torch.tensor(self.config.background, dtype=torch.float32), persistent=False)
        self.step = 0
        self.train_seconds = 0.0
        self.curve: list[tuple[int, float]] = []

    def scene(self) -> SceneData:
        return scene_for(self.data_root, self.downscale, self.config.background)

    # ------------------------------------------------------------------ state beyond the parameters
    def get_extra_state(self) -> dict:
        curve = torch.tensor(self.curve, dtype=torch.float64).reshape(-1, 2)
        return {"step": self.step, "active_sh_degree": self.gaussians.active_sh_degree, "train_seconds": self.train_seconds, "curve": curve, "density": self.density.state_dict()}

    def set_extra_state(self, state: dict) -> None:
        self.step = int(state["step"])
        self.gaussians.active_sh_degree = int(state["active_sh_degree"])
        self.train_seconds = float(state["train_seconds"])
        self.curve = [(int(s), float(p)) for s, p in state["curve"].tolist()]
        self.density.load_state_dict(state["density"])

    # ------------------------------------------------------------------ steps
    def _view(self, data: dict, i: int = 0) -> View:
        samples = data["data_samples"]
        return View(str(int(samples["index"][i])), data["inputs"][i], samples["viewmat"][i], samples["K"][i])

    def train_step(self, data: dict, optim_wrapper: OptimWrapper) -> dict:
        """One 3DGS step on the (single) view of ``data``; the optimizer is driven directly because
        density control edits its parameter list and Adam state."""
        data = self.data_preprocessor(data, True)
        self.step += 1
        loss = train_iteration(self.gaussians, optim_wrapper.optimizer, self.density, self._view(data), self.step, self.config, self.extent, self.background)
        return {"loss": loss, "n_gaussians": torch.tensor(float(len(self.gaussians)))}

    def forward(self, inputs: torch.Tensor, data_samples: dict | None = None, mode: str = "predict"):
        """``predict``: renders of the views in the batch, ``[{"pred": [H, W, 3], "gt": [H, W, 3]}]``."""
        if mode != "predict" or data_samples is None:
            raise ValueError(f"GaussianScene.forward supports mode='predict' with data_samples (training goes through train_step), got mode={mode!r}")
        data = {"inputs": inputs, "data_samples": data_samples}
        out = []
        with torch.no_grad():
            for i in range(inputs.shape[0]):
                view = self._view(data, i)
                rgb, _ = render_view(self.gaussians, view, inputs.shape[2], inputs.shape[1], self.background)
                out.append({"pred": rgb.clamp(0, 1), "gt": view.image})
        return out


class GaussianOptimConstructor:
    """Builds the 3DGS Adam (one group per parameter kind, rates from the scene's ``FitConfig``,
    positions scaled by the scene extent); ``optim_wrapper.constructor`` in a config."""

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None) -> None:
        self.optim_wrapper_cfg = dict(optim_wrapper_cfg)

    def __call__(self, model) -> OptimWrapper:
        scene = model.module if is_model_wrapper(model) else model
        if not isinstance(scene, GaussianScene):
            raise TypeError(f"GaussianOptimConstructor needs a GaussianScene model, got {type(scene).__name__}")
        return OptimWrapper(optimizer=make_optimizer(scene.gaussians, scene.config, scene.extent))


class SceneMetric(BaseMetric):
    """Mean PSNR and SSIM of the rendered test views."""

    default_prefix = "splat"

    def process(self, data_batch, data_samples) -> None:
        for sample in data_samples:
            pred, gt = sample["pred"].permute(2, 0, 1), sample["gt"].permute(2, 0, 1)
            self.results.append((float(psnr(pred, gt)), float(ssim(pred, gt))))

    def compute_metrics(self, results: list) -> dict:
        arr = np.asarray(results, dtype=np.float64)
        return {"psnr": float(arr[:, 0].mean()), "ssim": float(arr[:, 1].mean())}
