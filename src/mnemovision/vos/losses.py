"""JointFormer's clip loss, shared by training (``vos.engine``) and first-frame adaptation
(``vos.adapt``): clips of T frames with K objects, frame 0's ground truth memorised, each later frame
read from the memory of all earlier frames (dense attention), decoded, the compressed token updated
(update 1), then memorised with its predicted soft masks (update 2). Loss per frame t >= 1:
bootstrapped cross-entropy (the hardest ``p`` fraction of pixels) + soft Dice."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mnemovision.vos.api import aggregate_probs


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


def clip_pass(net, frames: torch.Tensor, masks: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Run a ``JointFormer`` through a clip: frames [B, T, 3, H, W] (H, W multiples of 16), masks
    [B, T, K, H, W] (only frame 0's are read). Returns the aggregated probabilities [B, K+1, H, W] of
    frames 1..T-1 and the final compressed tokens [B*K, 1, d].

    Raises:
        ValueError: shapes other than these, fewer than 2 frames or no object (nothing to learn
            from), or a size that is not a multiple of 16.
    """
    if frames.ndim != 5 or masks.ndim != 5 or frames.shape[2] != 3 or frames.shape[:2] != masks.shape[:2] or frames.shape[3:] != masks.shape[3:]:
        raise ValueError(f"clips must be frames [B, T, 3, H, W] and masks [B, T, K, H, W], got {list(frames.shape)} and {list(masks.shape)}")
    b, t_len, k_len, h, w = masks.shape
    if t_len < 2 or k_len < 1 or h % 16 or w % 16 or not h * w:
        raise ValueError(f"clips need T >= 2 frames, K >= 1 objects and H, W multiples of 16 (the network's stride), got T={t_len}, K={k_len}, {h}x{w}")
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


def clip_loss(net, frames: torch.Tensor, masks: torch.Tensor, p: float) -> dict[str, torch.Tensor]:
    """``{"loss_ce", "loss_dice"}`` summed over frames 1..T-1 of ``clip_pass`` (shapes as there);
    ``p``: the bootstrapped fraction of pixels (1: plain cross-entropy)."""
    outputs, _ = clip_pass(net, frames, masks)
    ce = dice = frames.new_zeros(())
    for t, agg in enumerate(outputs, start=1):
        target = masks[:, t]
        labels = torch.where(target.amax(1) > 0.5, target.argmax(1) + 1, torch.zeros_like(target[:, 0], dtype=torch.long))
        ce = ce + bootstrapped_ce(torch.log(agg), labels, p)
        dice = dice + dice_loss(agg[:, 1:], target)
    return {"loss_ce": ce, "loss_dice": dice}
