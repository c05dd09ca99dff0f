"""JointFormer-tiny, stage 0: synthetic 3-frame clips with 2 objects made from scikit-image's photos
(random affine + elastic motion, occlusions), 96x96, batch 4, AdamW 2e-4 (wd 0.05), gradient clip 1.
Trains from scratch on a CPU (the official recipe starts from ConvMAE ImageNet weights, which are
not bundled).

    mnemovision train jointformer_tiny_s0 --work-dir work_dirs/jointformer_tiny_s0
"""

from mmengine.dataset import InfiniteSampler, default_collate
from mmengine.hooks import CheckpointHook, LoggerHook
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
    dataset=dict(type=SyntheticClips, length=100000, size=96, frames=3, objects=2),
)
train_cfg = dict(type=IterBasedTrainLoop, max_iters=2000)
optim_wrapper = dict(optimizer=dict(type=AdamW, lr=2e-4, weight_decay=0.05), clip_grad=dict(max_norm=1.0))

default_hooks = dict(
    checkpoint=dict(type=CheckpointHook, interval=500, by_epoch=False, max_keep_ckpts=2, save_last=True),
    logger=dict(type=LoggerHook, interval=50),
)
custom_hooks = [dict(type=RichProgressHook, description="training JointFormer-tiny (stage 0)", keys=("loss",))]
randomness = dict(seed=0)
log_level = "WARNING"
