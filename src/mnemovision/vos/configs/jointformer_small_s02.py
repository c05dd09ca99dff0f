"""JointFormer-small, stage 2: the tiny recipe (``jointformer_tiny_s02``) with the small network,
from a ``jointformer_small_s0`` checkpoint given as ``load_from``.

    mnemovision train jointformer_small_s02 --work-dir work_dirs/jf_small_s02 --cfg-options load_from=work_dirs/jf_small_s0/iter_6000.pth
"""

from mmengine.config import read_base

with read_base():
    from .jointformer_tiny_s02 import *  # noqa: F401,F403

model.size = "small"  # noqa: F405
custom_hooks[0].description = "training JointFormer-small (stage 2)"  # noqa: F405
