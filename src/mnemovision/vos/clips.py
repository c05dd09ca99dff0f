"""Training clips for VOS.

``SyntheticClips`` (stage 1): from still photographs (scikit-image's, no download) it makes short
videos: a background crop and one or more foreground objects (textures from other photographs cut
by smooth random blob masks), each moved frame to frame by a random affine transform and a smooth
elastic deformation, so the model must track appearance through motion and shape change.
``VideoClips`` (stage 2): frames sampled from DAVIS-format videos with all their annotations.
Sample ``i`` is a pure function of (seed, i).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mnemovision.vision.checks import check_int, check_real

# The shared DAVIS-2016 sequences split for stage-2 training and held-out evaluation (bench/vos.py).
DAVIS16_TRAIN = ("bmx-trees", "breakdance", "camel", "car-roundabout", "cows")
DAVIS16_HELD_OUT = ("blackswan", "car-shadow", "dance-twirl", "dog", "goat")

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def normalise(frames: np.ndarray) -> torch.Tensor:
    """[T, H, W, 3] uint8 -> [T, 3, H, W] ImageNet-normalised float32."""
    x = (frames.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def denormalise(inputs: torch.Tensor) -> np.ndarray:
    """The inverse of ``normalise``: [T, 3, H, W] ImageNet-normalised -> [T, H, W, 3] uint8 (rounded)."""
    frames = inputs.detach().cpu().numpy().transpose(0, 2, 3, 1) * IMAGENET_STD + IMAGENET_MEAN
    return (np.clip(frames, 0, 1) * 255 + 0.5).astype(np.uint8)


def pair(size: int | tuple[int, int]) -> tuple[int, int]:
    """``size`` as (height, width): an int means a square."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _check_clip_options(owner: str, length, size, frames, objects, seed) -> None:
    """ValueError naming the first option of a clip dataset out of range (sizes: an int or (H, W))."""
    for name, value, low in (("length", length, 1), ("frames", frames, 1), ("objects", objects, 1), ("seed", seed, 0)):
        check_int(f"{owner}.{name}", value, low)
    sides = size if isinstance(size, (tuple, list)) else (size,)
    if len(sides) not in (1, 2):
        raise ValueError(f"{owner}.size must be an int or (H, W), got {size!r}")
    for side in sides:
        check_int(f"{owner}.size", side, 1)


def blob_mask(rng: np.random.Generator, size: int | tuple[int, int]) -> np.ndarray:
    """A smooth random blob [H, W] float in {0, 1} covering roughly 10-35% of the frame."""
    import cv2

    h, w = pair(size)
    noise = rng.standard_normal((5, 5)).astype(np.float32)
    field = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    cy, cx = rng.uniform(0.3, 0.7, 2)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy, xx = yy / h, xx / w
    field = field - 25.0 * ((xx - cx) ** 2 + (yy - cy) ** 2)  # one compact blob around (cy, cx)
    threshold = np.quantile(field, 1 - rng.uniform(0.1, 0.35))
    return (field > threshold).astype(np.float32)


def random_motion(rng: np.random.Generator, size: int | tuple[int, int]) -> dict:
    """One layer's motion over a clip: rotation, scale, shift and a smooth elastic field per unit time."""
    import cv2

    h, w = pair(size)
    elastic = [cv2.resize(rng.standard_normal((4, 4)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC) * 2.5 for _ in range(2)]
    return {"angle": rng.uniform(-20, 20), "scale": rng.uniform(-0.15, 0.15), "shift": rng.uniform(-0.12, 0.12, 2) * min(h, w), "elastic": elastic}


def warp_maps(motion: dict, size: int | tuple[int, int], t: float) -> tuple[np.ndarray, np.ndarray]:
    """Sampling maps (map_x, map_y) [H, W] of ``motion`` after ``t`` units of time (t = 0: identity)."""
    import cv2

    h, w = pair(size)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), motion["angle"] * t, 1 + motion["scale"] * t)
    m[:, 2] += motion["shift"] * t
    inv = cv2.invertAffineTransform(m)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x = (inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2]).astype(np.float32) + motion["elastic"][0] * t
    map_y = (inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2]).astype(np.float32) + motion["elastic"][1] * t
    return map_x, map_y


def compose_clip(background: np.ndarray, background_motion: dict, layers: list[tuple[np.ndarray, np.ndarray, dict]], speed: float, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Layers moving over a background, frame by frame: ``background`` [H, W, 3] uint8 moves by
    ``background_motion`` at 0.3 x ``speed`` per frame; each layer (texture [H, W, 3] uint8, mask
    [H, W] float, motion) is warped by its motion at ``speed`` per frame and pasted in order (later
    layers occlude earlier ones). Returns frames [T, H, W, 3] uint8 and masks [T, K, H, W] float32."""
    import cv2

    size = background.shape[:2]
    out = np.zeros((frames, *size, 3), np.uint8)
    masks = np.zeros((frames, len(layers), *size), np.float32)
    for t in range(frames):
        step = speed * t
        bx, by = warp_maps(background_motion, size, 0.3 * step)
        frame = cv2.remap(background, bx, by, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        for k, (texture, mask, motion) in enumerate(layers):
            mx, my = warp_maps(motion, size, step)
            tex = cv2.remap(texture, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            m = (cv2.remap(mask, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT) > 0.5).astype(np.float32)
            frame = frame * (1 - m[..., None]) + tex.astype(np.float32) * m[..., None]
            masks[t, :k] *= 1 - m  # later objects occlude earlier ones
            masks[t, k] = m
        out[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return out, masks


class SyntheticClips(Dataset):
    """``{"inputs": [T, 3, H, W] normalised frames, "data_samples": [T, K, H, W] float masks}``.

    Args:
        length: clips per epoch. size: S (a square) or (H, W). frames: T. objects: K (each clip has exactly K).
        photos: scikit-image photograph names used for backgrounds and object textures.
        motion: how far each layer moves per frame (1: large steps), or (low, high): each clip draws
            its own step uniformly in that range (easy and hard clips mixed).
    """

    def __init__(self, length: int = 1000, size: int = 96, frames: int = 3, objects: int = 2, photos: tuple[str, ...] | None = None, motion: float | tuple[float, float] = 1.0, seed: int = 0) -> None:
        from mnemovision.vision.photos import SKIMAGE_PHOTOS, skimage_photos

        _check_clip_options("SyntheticClips", length, size, frames, objects, seed)
        for step in (motion if isinstance(motion, (tuple, list)) else (motion,)):
            check_real("SyntheticClips.motion", step, 0)
        if isinstance(motion, (tuple, list)) and (len(motion) != 2 or motion[0] > motion[1]):
            raise ValueError(f"SyntheticClips.motion must be a number or (low, high) with low <= high, got {motion!r}")
        self.length, self.size, self.frames, self.objects, self.motion, self.seed = length, size, frames, objects, motion, seed
        self.photos = [img for _, img in skimage_photos(photos or SKIMAGE_PHOTOS)]
        self.metainfo = {"size": size, "frames": frames, "objects": objects}

    def __len__(self) -> int:
        return self.length

    def _crop(self, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
        """A random crop of a random photo with the aspect of ``size`` (H, W), resized to it."""
        import cv2

        img = self.photos[int(rng.integers(len(self.photos)))]
        h, w = size
        fit = min(img.shape[0] / h, img.shape[1] / w)  # the largest crop of this aspect
        scale = rng.uniform(1 / 3, 1) * fit
        ch, cw = max(1, int(h * scale)), max(1, int(w * scale))
        y, x = int(rng.integers(img.shape[0] - ch + 1)), int(rng.integers(img.shape[1] - cw + 1))
        return cv2.resize(img[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_AREA)

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng((self.seed, index))
        s, t_len, k_len = pair(self.size), self.frames, self.objects
        background = self._crop(rng, s)
        layers = [(self._crop(rng, s), blob_mask(rng, s), random_motion(rng, s)) for _ in range(k_len)]
        background_motion = random_motion(rng, s)
        speed = rng.uniform(*self.motion) if isinstance(self.motion, (tuple, list)) else self.motion
        frames, masks = compose_clip(background, background_motion, layers, speed, t_len)
        return {"inputs": normalise(frames), "data_samples": torch.from_numpy(masks)}


class VideoClips(Dataset):
    """Clips of ``frames`` frames (random order-preserving jumps up to ``max_jump``) from DAVIS-format
    videos with the first frame's objects (up to ``objects``): one random crop per clip (``min_crop``
    to 1 of each side, 1: the whole frame) resized to ``size`` (S or (H, W)), mirrored half the time.

    ``root`` None means the shared DAVIS-2016 data; ``sequences`` None means every sequence there."""

    def __init__(self, root: str | None = None, sequences: tuple[str, ...] | None = None, length: int = 1000, size: int = 96, frames: int = 3, objects: int = 2, max_jump: int = 5, min_crop: float = 1.0, seed: int = 0) -> None:
        from mnemovision.vos.data import davis_sequence, list_sequences

        if root is None:
            from mnemovision.vision.data import shared_data_path

            root = shared_data_path("vos", "davis2016")
            if root is None:
                raise FileNotFoundError("VideoClips: no root given and vos/davis2016 not found in the shared data (set $MNEMOVISION_DATA)")
        _check_clip_options("VideoClips", length, size, frames, objects, seed)
        check_int("VideoClips.max_jump", max_jump, 1)
        check_real("VideoClips.min_crop", min_crop, 0, 1, low_open=True)
        self.sequences = [davis_sequence(root, name) for name in (sequences or list_sequences(root))]
        self.length, self.size, self.frames, self.objects, self.max_jump, self.seed = length, size, frames, objects, max_jump, seed
        self.min_crop = min_crop
        self.metainfo = {"root": str(Path(root)), "sequences": [s.name for s in self.sequences]}

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        import cv2

        rng = np.random.default_rng((self.seed, index))
        seq = self.sequences[int(rng.integers(len(self.sequences)))]
        annotated = sorted(seq.annotations)
        start = annotated[int(rng.integers(max(1, len(annotated) - self.frames)))]
        picks = [start]
        for _ in range(self.frames - 1):
            nxt = [i for i in annotated if picks[-1] < i <= picks[-1] + self.max_jump] or [picks[-1]]
            picks.append(nxt[int(rng.integers(len(nxt)))])
        h, w = pair(self.size)
        raw = [seq.frame(i) for i in picks]
        full_h, full_w = raw[0].shape[:2]
        ch, cw = (int(round(side * rng.uniform(self.min_crop, 1.0))) for side in (full_h, full_w))
        y, x = int(rng.integers(full_h - ch + 1)), int(rng.integers(full_w - cw + 1))
        flip = bool(rng.integers(2))

        def view(image: np.ndarray, interpolation: int) -> np.ndarray:
            out = cv2.resize(image[y : y + ch, x : x + cw], (w, h), interpolation=interpolation)
            return out[:, ::-1] if flip else out

        frames = np.stack([view(image, cv2.INTER_AREA) for image in raw])
        raw_masks = [seq.mask(i) for i in picks]
        ids = [int(i) for i in np.unique(raw_masks[0]) if i not in (0, 255)][: self.objects]
        masks = np.zeros((self.frames, self.objects, h, w), np.float32)
        for t, raw_mask in enumerate(raw_masks):
            m = view(raw_mask, cv2.INTER_NEAREST)
            for k, object_id in enumerate(ids):
                masks[t, k] = m == object_id
        return {"inputs": normalise(frames), "data_samples": torch.from_numpy(masks)}


class MixedClips(Dataset):
    """Real and synthetic clips interleaved: sample ``i`` comes from ``VideoClips(**video)`` unless
    ``i % every == every - 1``, when it comes from ``SyntheticClips(**synthetic)`` (which keeps the
    network general while it adapts to a handful of real videos). Both must give the same
    ``size``, ``frames`` and ``objects``."""

    def __init__(self, video: dict, synthetic: dict, length: int = 100000, every: int = 2) -> None:
        self.video, self.synthetic = VideoClips(**video), SyntheticClips(**synthetic)
        for key in ("size", "frames", "objects"):
            real, made = getattr(self.video, key), getattr(self.synthetic, key)
            if (pair(real) != pair(made)) if key == "size" else real != made:
                raise ValueError(f"MixedClips: video and synthetic clips differ in {key!r} ({real} vs {made})")
        if every < 1:
            raise ValueError(f"MixedClips: every must be >= 1, got {every}")
        self.length, self.every = length, every
        self.metainfo = {"video": self.video.metainfo, "synthetic": self.synthetic.metainfo, "every": every}

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if index % self.every == self.every - 1:
            return self.synthetic[index // self.every]
        return self.video[index]
