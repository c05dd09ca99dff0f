"""JointFormer-tiny, stage 2 after stage 0, at a higher resolution (160x288): 6-frame clips (jumps of up to
8 frames) from the DAVIS-format videos of the training split (``DAVIS16_TRAIN`` of the shared data; the other
sequences are held out for bench/vos.py), one random crop (70-100% of each side) and mirror per
clip, with every third clip synthetic (one object) so that five videos do not narrow the network;
from the stage-0 checkpoint given as ``load_from``; AdamW 1e-4, cosine to 1% over 800 steps.

    mnemovision train jointformer_tiny_s02 --work-dir work_dirs/jf_s02 --cfg-options load_from=work_dirs/jf_s0/iter_6000.pth
"""

from mmengine.config import read_base
from mmengine.optim import CosineAnnealingLR

from mnemovision.vos.clips import DAVIS16_TRAIN, MixedClips

with read_base():
    from .jointformer_tiny_s0 import *  # noqa: F401,F403

size = (160, 288)
train_dataloader.dataset = dict(  # noqa: F405
    type=MixedClips,
    video=dict(root=None, sequences=DAVIS16_TRAIN, size=size, frames=6, objects=1, max_jump=8, min_crop=0.7),
    synthetic=dict(size=size, frames=6, objects=1, motion=(0.1, 0.6), seed=1),
    length=100000,
    every=3,
)
max_iters = 800
train_cfg.max_iters = max_iters  # noqa: F405
optim_wrapper.optimizer.lr = 1e-4  # noqa: F405
param_scheduler = [dict(type=CosineAnnealingLR, T_max=max_iters, eta_min=1e-6, by_epoch=False, begin=0, end=max_iters)]
default_hooks.checkpoint.interval = 500  # noqa: F405
model.warm_start, model.warm_end = 0, 1  # noqa: F405  (bootstrapping already warm)
custom_hooks[0].description = "training JointFormer-tiny (stage 2)"  # noqa: F405
