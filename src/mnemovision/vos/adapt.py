"""First-frame adaptation: fine-tune a JointFormer on clips "dreamed" from the annotated frame.

Online fine-tuning on the first annotated frame is OSVOS's idea (Caelles et al., CVPR 2017); making
whole training clips out of that one frame, with the object cut out, the background filled in and
both moved independently, is Lucid Data Dreaming's (Khoreva et al., IJCV 2019). Here each clip moves
every annotated object by its own random affine + elastic motion over the inpainted background (which
moves more slowly, like a camera), with a brightness change per frame and a mirror half of the time,
and the network is trained on it with the JointFormer clip loss (``vos.losses.clip_loss``). A network
trained from scratch on little data learns the look of the object it has to follow this way.
"""

from __future__ import annotations

import numpy as np
import torch

from mnemovision.vision.checks import check_real
from mnemovision.vos.clips import compose_clip, normalise, random_motion
from mnemovision.vos.losses import clip_loss


def dream_clip(frame: np.ndarray, masks: np.ndarray, frames: int, rng: np.random.Generator, speed: tuple[float, float] = (0.05, 0.8)) -> tuple[np.ndarray, np.ndarray]:
    """A clip made from one annotated frame.

    Args:
        frame: [H, W, 3] uint8. masks: [K, H, W] (bool or float; > 0.5 is the object).
        frames: T. speed: each clip draws its per-frame motion step uniformly in this range.
    Returns: frames [T, H, W, 3] uint8 (the first is ``frame`` up to brightness and mirroring) and
        masks [T, K, H, W] float32 in {0, 1}.
    """
    import cv2

    objects = (np.asarray(masks) > 0.5).astype(np.float32)
    union = cv2.dilate((objects.sum(0) > 0).astype(np.uint8), np.ones((5, 5), np.uint8))
    background = cv2.inpaint(frame, union, 5, cv2.INPAINT_TELEA)
    size = frame.shape[:2]
    layers = [(frame, objects[k], random_motion(rng, size)) for k in range(len(objects))]
    clip, clip_masks = compose_clip(background, random_motion(rng, size), layers, rng.uniform(*speed), frames)
    gain = rng.uniform(0.9, 1.1, (frames, 1, 1, 1))
    bias = rng.uniform(-10.0, 10.0, (frames, 1, 1, 1))
    clip = np.clip(clip * gain + bias, 0, 255).astype(np.uint8)
    if rng.integers(2):
        clip, clip_masks = clip[:, :, ::-1], clip_masks[..., ::-1]
    return np.ascontiguousarray(clip), np.ascontiguousarray(clip_masks)


def adapt_jointformer(net, frame: np.ndarray, masks: np.ndarray, size: tuple[int, int], steps: int, lr: float = 1e-4, batch: int = 2, frames: int = 3, speed: tuple[float, float] = (0.05, 0.8), bootstrap_p: float = 0.15, seed: int = 0) -> list[float]:
    """Fine-tune ``net`` (a ``JointFormer``, in place; left in eval mode) on ``steps`` batches of
    ``dream_clip`` clips of ``frame`` [H, W, 3] uint8 with ``masks`` [K, H, W], resized to ``size``
    (h, w), multiples of 16, each clip moving at a step drawn from ``speed`` (0.8: up to about a
    tenth of the frame per frame). AdamW (no weight decay), gradient norm clipped at 1. Deterministic
    for a given ``seed``. Returns the loss of each step."""
    import cv2

    from mnemovision.vision.progress import track

    h, w = size
    if h % 16 or w % 16:
        raise ValueError(f"adapt_jointformer: size must be multiples of 16, got {size}")
    if steps < 0 or batch < 1 or frames < 2:
        raise ValueError(f"adapt_jointformer: need steps >= 0, batch >= 1, frames >= 2; got {steps}, {batch}, {frames}")
    check_real("adapt_jointformer: bootstrap_p", bootstrap_p, 0, 1, low_open=True)
    image = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
    small = np.stack([cv2.resize(np.asarray(m, np.float32), (w, h), interpolation=cv2.INTER_LINEAR) for m in masks])
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    net.train()
    try:
        for _ in track(range(steps), "adapting JointFormer to the annotated frame", transient=True):
            clips = [dream_clip(image, small, frames, rng, speed) for _ in range(batch)]
            inputs = torch.stack([normalise(c) for c, _ in clips])
            targets = torch.stack([torch.from_numpy(m) for _, m in clips])
            parts = clip_loss(net, inputs, targets, bootstrap_p)
            loss = parts["loss_ce"] + parts["loss_dice"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()
            losses.append(float(loss.detach()))
    finally:
        net.eval()
    return losses
