"""Tiny denoiser on real photo patches: the engine's smoke-test recipe (seconds on a CPU).

    mnemovision train denoise_tiny --work-dir work_dirs/denoise_tiny
    torchrun --nproc_per_node 2 -m mnemovision train denoise_tiny --launcher pytorch
"""

from mmengine.dataset import DefaultSampler, default_collate
from mmengine.hooks import CheckpointHook, LoggerHook
from mmengine.runner import IterBasedTrainLoop, TestLoop, ValLoop
from torch.optim import Adam

from mnemovision.engine.examples import DenoisePSNR, PatchDenoiseDataset, TinyDenoiser

model = dict(type=TinyDenoiser, channels=16, depth=3)

train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type=DefaultSampler, shuffle=True),
    collate_fn=dict(type=default_collate),
    dataset=dict(type=PatchDenoiseDataset, split="train", length=512, patch=32, sigma=0.1),
)
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    sampler=dict(type=DefaultSampler, shuffle=False),
    collate_fn=dict(type=default_collate),
    dataset=dict(type=PatchDenoiseDataset, split="val", length=64, patch=32, sigma=0.1),
)
test_dataloader = val_dataloader

train_cfg = dict(type=IterBasedTrainLoop, max_iters=60, val_interval=30)
val_cfg = dict(type=ValLoop)
test_cfg = dict(type=TestLoop)
val_evaluator = dict(type=DenoisePSNR)
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type=Adam, lr=2e-3))

default_hooks = dict(
    checkpoint=dict(type=CheckpointHook, interval=30, by_epoch=False),
    logger=dict(type=LoggerHook, interval=10),
)
randomness = dict(seed=0)
env_cfg = dict(dist_cfg=dict(backend="gloo"))
log_level = "WARNING"
