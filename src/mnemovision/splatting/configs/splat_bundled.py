"""3D Gaussian splatting on the bundled scene (generated into ``data_root`` on first use; no network).

    mnemovision train splat_bundled --work-dir work_dirs/splat_bundled
    mnemovision train splat_bundled --work-dir work_dirs/splat_bundled --resume   # continue exactly

About 8 minutes on 2 CPU cores for 1000 iterations (30.6 dB test PSNR, bench/RESULTS.md). Results in
the work dir: metrics.json, psnr_curve.png, renders/, point_cloud.ply, orbit.mp4, checkpoints.
Another scene: ``mnemovision splat fit DATA_DIR --out DIR`` (same recipe, any transforms.json or
COLMAP folder), or copy this file and change ``data_root`` (in the model and both datasets).
"""

from mmengine.dataset import DefaultSampler, InfiniteSampler, default_collate
from mmengine.hooks import CheckpointHook, LoggerHook
from mmengine.runner import IterBasedTrainLoop, TestLoop, ValLoop
from torch.optim import Adam

from mnemovision.engine.hooks import RichProgressHook
from mnemovision.splatting.engine import GaussianOptimConstructor, GaussianScene, SceneMetric, SceneViews, SplatResultsHook

model = dict(type=GaussianScene, data_root="work_dirs/bundled_scene", downscale=1.0, iterations=1000, fit=dict(), make_if_missing=True)

train_dataloader = dict(
    batch_size=1,
    num_workers=0,
    sampler=dict(type=InfiniteSampler, shuffle=True),
    collate_fn=dict(type=default_collate),
    dataset=dict(type=SceneViews, data_root="work_dirs/bundled_scene", split="train", downscale=1.0, make_if_missing=True),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    sampler=dict(type=DefaultSampler, shuffle=False),
    collate_fn=dict(type=default_collate),
    dataset=dict(type=SceneViews, data_root="work_dirs/bundled_scene", split="test", downscale=1.0, make_if_missing=True),
)
test_dataloader = val_dataloader

train_cfg = dict(type=IterBasedTrainLoop, max_iters=1000, val_interval=100)
val_cfg = dict(type=ValLoop)
test_cfg = dict(type=TestLoop)
val_evaluator = dict(type=SceneMetric)
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type=Adam, lr=0.0, eps=1e-15), constructor=GaussianOptimConstructor)

default_hooks = dict(
    checkpoint=dict(type=CheckpointHook, interval=250, by_epoch=False, max_keep_ckpts=2, save_last=True, save_param_scheduler=False),
    logger=dict(type=LoggerHook, interval=100),
)
custom_hooks = [
    dict(type=RichProgressHook, description="fitting Gaussians", keys=("loss", "n_gaussians")),
    dict(type=SplatResultsHook, orbit_frames=60),
]
randomness = dict(seed=0)
log_level = "WARNING"
