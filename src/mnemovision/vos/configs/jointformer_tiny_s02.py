"""JointFormer-tiny, stage 2 after stage 0: clips from the DAVIS-format videos of the training split
(``DAVIS16_TRAIN`` of the shared data; the other sequences are held out for bench/vos.py), starting
from the stage-0 checkpoint given as ``load_from``.

    mnemovision train jointformer_tiny_s02 --work-dir work_dirs/jf_s02 --cfg-options load_from=work_dirs/jf_s0/iter_2000.pth
"""

from mmengine.config import read_base

from mnemovision.vos.clips import DAVIS16_TRAIN, VideoClips

with read_base():
    from .jointformer_tiny_s0 import *  # noqa: F401,F403

train_dataloader.dataset = dict(type=VideoClips, root=None, sequences=DAVIS16_TRAIN, length=100000, size=96, frames=3, objects=1, max_jump=5)  # noqa: F405
train_cfg.max_iters = 1000  # noqa: F405
model.warm_start, model.warm_end = 0, 1  # noqa: F405  (bootstrapping already warm)
custom_hooks[0].description = "training JointFormer-tiny (stage 2)"  # noqa: F405
