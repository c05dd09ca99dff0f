"""JointFormer training as an mmengine model: clips of T frames with K objects, frame 0's ground truth
memorised, each later frame read from the memory of all earlier frames (dense attention), decoded,
the compressed token updated (update 1), then memorised with its predicted soft masks (update 2).
Loss per frame t >= 1: bootstrapped cross-entropy (the hardest ``p`` fraction of pixels; p goes
linearly from 1 to ``bootstrap_p`` between ``warm_start`` and ``warm_end`` steps) + soft Dice."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel

from mnemovision.vos.api import aggregate_probs
from mnemovision.vos.models import build_jointformer
from mnemovision.vos.models.jointformer import SIZES


def bootstrapped_ce(log_probs: torch.Tensor, labels: torch.Tensor, p: float) -> torch.Tensor:
    """Mean of the top ``p`` fraction of per-pixel NLL; log_probs [B, C, H, W], labels [B, H, W]."""
    nll = F.nll_loss(log_probs, labels, reduction="none").flatten(1)
    if p >= 1.0:
        return nll.mean()
    k = max(1, int(p * nll.shape[1]))
    return nll.topk(k, dim=1).values.mean()


def dice_loss(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice per object, averaged; probs and target [B, K, H, W]."""
    inter = (probs * target).flatten(2).sum(-1)
    union = probs.flatten(2).sum(-1) + target.flatten(2).sum(-1)
    return (1 - (2 * inter + 1) / (union + 1)).mean()


class JointFormerTrainer(BaseModel):
    """Wraps ``build_jointformer(size)`` as ``self.net``; ``forward(inputs [B, T, 3, H, W],
    data_samples [B, T, K, H, W], mode="loss")`` with H and W multiples of 16."""

    def __init__(self, size: str = "tiny", bootstrap_p: float = 0.15, warm_start: int = 200, warm_end: int = 1000, data_preprocessor: dict | None = None) -> None:
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

    def clip_pass(self, frames: torch.Tensor, masks: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Aggregated probabilities [B, K+1, H, W] for frames 1..T-1, and the final tokens."""
        net = self.net
        b, t_len, k_len, h, w = masks.shape
        rep = lambda x: x.repeat_interleave(k_len, dim=0)  # noqa: E731  [B, ...] -> [B*K, ...]

        def memory_masks(per_object: torch.Tensor) -> torch.Tensor:  # [B, K, H, W] -> [B*K, 2, H, W]
            own = per_object.reshape(b * k_len, 1, h, w)
            others = (per_object.sum(1, keepdim=True) - per_object).reshape(b * k_len, 1, h, w)
            return torch.cat([own, others], 1)

        cache, token = net.encode_memory(rep(frames[:, 0]), memory_masks(masks[:, 0]), net.new_token(b * k_len))
        memory = [cache]
        outputs = []
        for t in range(1, t_len):
            read_memory = [torch.cat([m[layer] for m in memory], dim=1) for layer in range(len(net.blocks3))]
            f4, f8, f16, grid = net.read(rep(frames[:, t]), read_memory)
            logits, fusion = net.segment(f4, f8, f16, grid, token)
            token = net.update_token(token, fusion)
            agg = aggregate_probs(torch.sigmoid(logits).view(b, k_len, h, w), dim=1)
            outputs.append(agg)
            if t < t_len - 1:
                cache, token = net.encode_memory(rep(frames[:, t]), memory_masks(agg[:, 1:]), token)
                memory.append(cache)
        return outputs, token

    def forward(self, inputs: torch.Tensor, data_samples: torch.Tensor | None = None, mode: str = "loss"):
        if mode != "loss" or data_samples is None:
            raise ValueError(f"JointFormerTrainer trains only (mode='loss' with masks); use vos.api for inference, got mode={mode!r}")
        outputs, _ = self.clip_pass(inputs, data_samples)
        p = self.current_p()
        ce = dice = 0.0
        for t, agg in enumerate(outputs, start=1):
            target = data_samples[:, t]
            labels = torch.where(target.amax(1) > 0.5, target.argmax(1) + 1, torch.zeros_like(target[:, 0], dtype=torch.long))
            ce = ce + bootstrapped_ce(torch.log(agg), labels, p)
            dice = dice + dice_loss(agg[:, 1:], target)
        if self.training:
            self.steps += 1
        return {"loss_ce": ce, "loss_dice": dice}


def export_jointformer(checkpoint, out, dtype: torch.dtype = torch.float16, inference: dict | None = None) -> None:
    """An mmengine training checkpoint (``iter_N.pth``) -> a ``.safetensors`` file that
    ``vos.api.load_model`` runs; loaded weights-only (only mmengine's bookkeeping classes allowed).
    ``inference``: propagator settings stored beside the weights (see ``save_jointformer``)."""
    from mnemovision.engine import allow_mmengine_checkpoints
    from mnemovision.vos.jointformer_model import save_jointformer

    with allow_mmengine_checkpoints():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    weights = {k.removeprefix("net."): v for k, v in state["state_dict"].items() if k.startswith("net.")}
    size = {spec["dims"][2]: name for name, spec in SIZES.items()}[weights["cls_token"].shape[-1]]
    net = build_jointformer(size)
    net.load_state_dict(weights, strict=True)
    save_jointformer(out, net, size, dtype, inference)
