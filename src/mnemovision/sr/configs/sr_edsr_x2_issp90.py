"""EDSR-baseline x2 trained sparse with ISS-P at 90% sparsity, the shipped CPU recipe (2000 steps):
the dense recipe (sr_edsr_x2) at a constant learning rate for 800 steps, then ISS-P's soft shrinkage
(alpha 0.98: after every step the smallest 90% of each layer's weights are scaled by alpha) for 200
steps, then the hard mask and the cosine schedule restarted over the last 1000 steps (fine-tuning,
as the ISS-P code runs its second stage). The image-facing convs (3 channels in, 3 out: 0.25% of the
weights) stay dense and the other layers are pruned a little more, so 90% of all conv weights are
zero.

The paper shrinks from the random initialisation for ~100k steps at alpha 0.95; at a 2000-step CPU
budget that scored 35.42 dB on Set5 against this recipe's 36.25 (bench/RESULTS.md has the variants).

    mnemovision train sr_edsr_x2_issp90 --work-dir work_dirs/sr_edsr_x2_issp90
"""

from mmengine.config import read_base

from mnemovision.sr.engine.hooks import ISSPHook

with read_base():
    from .sr_edsr_x2 import *  # noqa: F401,F403

PRUNE_ITERS = 1000
SHRINK_FROM = 800
SKIP = ("*conv_first", "*conv_last")
# layer_sparsity_for(EDSR-baseline x2, 0.9, SKIP): 90% of 1,367,424 weights from the 1,363,968 pruned
LAYER_SPARSITY = 0.9 * 1367424 / 1363968

custom_hooks.append(  # noqa: F405
    dict(type=ISSPHook, sparsity=LAYER_SPARSITY, alpha=0.98, prune_iters=PRUNE_ITERS, shrink_from=SHRINK_FROM, skip=SKIP))
param_scheduler = [dict(type=CosineAnnealingLR, T_max=2000 - PRUNE_ITERS, begin=PRUNE_ITERS, end=2000, eta_min=5e-6, by_epoch=False)]  # noqa: F405
