"""JointFormer-tiny, stage 0: synthetic 4-frame clips with 2 objects made from scikit-image's photos
(random affine + elastic motion, each clip with its own speed in [0.1, 0.6], occlusions), 112x192
(the aspect of 480p video), batch 4, AdamW 3e-4 (wd 0.05; 200 warm-up steps, then cosine to 1%),
gradient clip 1. Trains from scratch on a CPU (the official recipe starts from ConvMAE ImageNet
weights, which are not bundled).

    mnemovision train jointformer_tiny_s0 --work-dir work_dirs/jointformer_tiny_s0
"""

from mmengine.dataset import InfiniteSampler, default_collate
from mmengine.hooks import CheckpointHook, LoggerHook
from mmengine.optim import CosineAnnealingLR, LinearLR
from mmengine.runner import IterBasedTrainLoop
from torch.optim import AdamW

from mnemovision.engine.hooks import RichProgressHook
from mnemovision.vos.clips import SyntheticClips
from mnemovision.vos.engine import JointFormerTrainer

model = dict(type=JointFormerTrainer, size="tiny", bootstrap_p=0.15, warm_start=200, warm_end=1000)

train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type=InfiniteSampler, shuffle=True),
    collate_fn=dict(type=default_collate),
    dataset=dict(type=SyntheticClips, length=100000, size=(112, 192), frames=4, objects=2, motion=(0.1, 0.6)),
)
max_iters = 6000
train_cfg = dict(type=IterBasedTrainLoop, max_iters=max_iters)
optim_wrapper = dict(optimizer=dict(type=AdamW, lr=3e-4, weight_decay=0.05), clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type=LinearLR, start_factor=0.01, by_epoch=False, begin=0, end=200),
    dict(type=CosineAnnealingLR, T_max=max_iters - 200, eta_min=3e-6, by_epoch=False, begin=200, end=max_iters),
]

default_hooks = dict(
    checkpoint=dict(type=CheckpointHook, interval=1000, by_epoch=False, max_keep_ckpts=2, save_last=True),
    logger=dict(type=LoggerHook, interval=50),
)
custom_hooks = [dict(type=RichProgressHook, description="training JointFormer-tiny (stage 0)", keys=("loss",))]
randomness = dict(seed=0)
log_level = "WARNING"
