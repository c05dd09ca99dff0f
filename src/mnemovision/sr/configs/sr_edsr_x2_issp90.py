"""EDSR-baseline x2 trained sparse from scratch with ISS-P at 90% per-layer sparsity: the dense
recipe (sr_edsr_x2) plus soft shrinkage (alpha 0.95) after every step for the first 1000
iterations, then the hard mask for the last 1000 (fine-tuning).

    mnemovision train sr_edsr_x2_issp90 --work-dir work_dirs/sr_edsr_x2_issp90
"""

from mmengine.config import read_base

from mnemovision.sr.engine.hooks import ISSPHook

with read_base():
    from .sr_edsr_x2 import *  # noqa: F401,F403

custom_hooks.append(dict(type=ISSPHook, sparsity=0.9, alpha=0.95, prune_iters=1000))  # noqa: F405
