"""JointFormer training as an mmengine model: the clip loss of ``vos.losses`` (bootstrapped
cross-entropy + soft Dice through the token chain), with the bootstrapped fraction p going linearly
from 1 to ``bootstrap_p`` between ``warm_start`` and ``warm_end`` steps."""

from __future__ import annotations

import torch
from mmengine.model import BaseModel

from mnemovision.vision.checks import check_int, check_real
from mnemovision.vos.losses import clip_loss
from mnemovision.vos.models import build_jointformer
from mnemovision.vos.models.jointformer import SIZES


class JointFormerTrainer(BaseModel):
    """Wraps ``build_jointformer(size)`` as ``self.net``; ``forward(inputs [B, T, 3, H, W],
    data_samples [B, T, K, H, W], mode="loss")`` with H and W multiples of 16.

    Raises:
        ValueError: ``bootstrap_p`` outside (0, 1] (a percentage such as 15 would silently train with
            plain cross-entropy once the warm-up ends), or warm steps that are not ints with
            0 <= ``warm_start`` <= ``warm_end``.
    """

    def __init__(self, size: str = "tiny", bootstrap_p: float = 0.15, warm_start: int = 200, warm_end: int = 1000, data_preprocessor: dict | None = None) -> None:
        check_real("JointFormerTrainer.bootstrap_p", bootstrap_p, 0, 1, low_open=True)
        check_int("JointFormerTrainer.warm_start", warm_start, 0)
        check_int("JointFormerTrainer.warm_end", warm_end, warm_start)
        super().__init__(data_preprocessor=data_preprocessor)
        self.size = size
        self.net = build_jointformer(size)
        self.bootstrap_p, self.warm_start, self.warm_end = bootstrap_p, warm_start, warm_end
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def current_p(self) -> float:
        s = int(self.steps)
        if s <= self.warm_start:
            return 1.0
        if s >= self.warm_end:
            return self.bootstrap_p
        return 1.0 - (1.0 - self.bootstrap_p) * (s - self.warm_start) / (self.warm_end - self.warm_start)

    def forward(self, inputs: torch.Tensor, data_samples: torch.Tensor | None = None, mode: str = "loss"):
        if mode != "loss" or data_samples is None:
            raise ValueError(f"JointFormerTrainer trains only (mode='loss' with masks); use vos.api for inference, got mode={mode!r}")
        losses = clip_loss(self.net, inputs, data_samples, self.current_p())
        if self.training:
            self.steps += 1
        return losses


def export_jointformer(checkpoint, out, dtype: torch.dtype = torch.float16, inference: dict | None = None) -> None:
    """An mmengine training checkpoint (``iter_N.pth``) -> a ``.safetensors`` file that
    ``vos.api.load_model`` runs; loaded weights-only (only mmengine's bookkeeping classes allowed).
    ``inference``: propagator settings stored beside the weights (see ``save_jointformer``).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: naming ``checkpoint``, when it cannot be loaded, when its ``state_dict``
            holds no JointFormerTrainer network (``net.*`` keys with ``net.cls_token``), a width of
            no known size, or weights that do not fit that size's network (missing, extra or
            misshapen).
    """
    from mnemovision.engine import allow_mmengine_checkpoints
    from mnemovision.vision.checkpoints import load_checkpoint, load_state_dict_strict
    from mnemovision.vision.errors import CheckpointError
    from mnemovision.vos.jointformer_model import save_jointformer

    with allow_mmengine_checkpoints():
        state = load_checkpoint(checkpoint)  # a damaged file: CheckpointError naming it
    state_dict = state.get("state_dict")
    if not isinstance(state_dict, dict) or "net.cls_token" not in state_dict:
        raise CheckpointError(f"{checkpoint}: field 'state_dict' must hold a JointFormerTrainer's weights (net.cls_token, net.*), found none")
    weights = {k.removeprefix("net."): v for k, v in state_dict.items() if k.startswith("net.")}
    sizes = {spec["dims"][2]: name for name, spec in SIZES.items()}
    width = weights["cls_token"].shape[-1]
    if width not in sizes:
        raise CheckpointError(f"{checkpoint}: net.cls_token has width {width}, expected one of {sorted(sizes)} ({', '.join(sizes.values())})")
    net = build_jointformer(sizes[width])
    load_state_dict_strict(net, weights, source=f"{checkpoint} (net.*, JointFormer '{sizes[width]}')")
    save_jointformer(out, net, sizes[width], dtype, inference)
