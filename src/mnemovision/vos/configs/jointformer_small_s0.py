"""JointFormer-small, stage 0: the tiny recipe (``jointformer_tiny_s0``) with the small network.

    mnemovision train jointformer_small_s0 --work-dir work_dirs/jf_small_s0
"""

from mmengine.config import read_base

with read_base():
    from .jointformer_tiny_s0 import *  # noqa: F401,F403

model.size = "small"  # noqa: F405
custom_hooks[0].description = "training JointFormer-small (stage 0)"  # noqa: F405
