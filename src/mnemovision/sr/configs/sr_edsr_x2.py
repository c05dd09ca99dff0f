"""EDSR-baseline x2, dense, the shipped CPU recipe: L1, Adam 5e-4 (betas 0.9, 0.99) with cosine decay
to 1%, batches of 16 LR patches of 24x24 cut from scikit-image's photographs (MATLAB-bicubic LR),
2000 iterations; Set5 (shared data) scored with BasicSR's PSNR-Y / SSIM-Y.

    mnemovision train sr_edsr_x2 --work-dir work_dirs/sr_edsr_x2
"""

from mmengine.dataset import DefaultSampler, InfiniteSampler, default_collate
from mmengine.hooks import CheckpointHook, LoggerHook
from mmengine.optim import CosineAnnealingLR
from mmengine.runner import IterBasedTrainLoop, TestLoop, ValLoop
from torch.optim import Adam

from mnemovision.engine.hooks import RichProgressHook
from mnemovision.sr.data import SRBenchmark, SRPatches
from mnemovision.sr.engine.model import SRMetric, SRModel

model = dict(type=SRModel, arch="edsr", size="baseline", scale=2)

train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    sampler=dict(type=InfiniteSampler, shuffle=True),
    collate_fn=dict(type=default_collate),
    dataset=dict(type=SRPatches, scale=2, patch=24, length=32000, images=None),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    sampler=dict(type=DefaultSampler, shuffle=False),
    collate_fn=dict(type=default_collate),
    dataset=dict(type=SRBenchmark, folder=None, scale=2),
)
test_dataloader = val_dataloader

train_cfg = dict(type=IterBasedTrainLoop, max_iters=2000, val_interval=500)
val_cfg = dict(type=ValLoop)
test_cfg = dict(type=TestLoop)
val_evaluator = dict(type=SRMetric, scale=2)
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type=Adam, lr=5e-4, betas=(0.9, 0.99)))
# `end` is explicit: mmengine stores it in the checkpoint, and a default end would be the first run's length
param_scheduler = [dict(type=CosineAnnealingLR, T_max=2000, begin=0, end=2000, eta_min=5e-6, by_epoch=False)]

default_hooks = dict(
    checkpoint=dict(type=CheckpointHook, interval=500, by_epoch=False, max_keep_ckpts=2, save_last=True),
    logger=dict(type=LoggerHook, interval=100),
)
custom_hooks = [dict(type=RichProgressHook, description="training EDSR x2", keys=("loss",))]
randomness = dict(seed=0)
log_level = "WARNING"
