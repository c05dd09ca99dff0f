"""JointFormer behind the ``VOSModel`` interface: per-object compressed tokens and memory banks.

Memory policy as the official inference: each object's bank keeps the frame where it was first
annotated (never dropped), frames memorised every ``mem_every`` frames or annotated, up to
``max_memory_frames`` beside the first (oldest non-first dropped: ``keep_first``), plus a temporary
slot with the last frame when the bank did not store it (with ``max_memory_frames`` 0 the bank holds
the first frame only and every later frame passes through the temporary slot). Frames are resized so
the shorter side is ``internal_size``, padded to a multiple of 16 and ImageNet-normalised;
probabilities are resized back to the frame.

With ``adapt_steps`` > 0, the first annotated frame of a video fine-tunes a copy of the network for
that video (``vos.adapt``: clips dreamed from the frame and its masks) before it is memorised; masks
given at later frames are memorised without adapting again.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from mnemovision.vision.checks import check_int, check_real, is_int
from mnemovision.vos.clips import IMAGENET_MEAN, IMAGENET_STD
from mnemovision.vos.memory import MemoryBank
from mnemovision.vos.models.jointformer import JointFormer



MAX_ASPECT = 4


def prepare_frame(frame: np.ndarray, internal_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """[H, W, 3] uint8 -> normalised [1, 3, h', w'] (shorter side ``internal_size``, padded to x16)
    and the unpadded size (h, w) at that scale. The longer side is capped at ``MAX_ASPECT`` x
    ``internal_size``: a 2 x 300 frame would otherwise become 480 x 72,000."""
    image = torch.from_numpy(np.array(frame, dtype=np.float32)).permute(2, 0, 1)[None] / 255.0
    h, w = frame.shape[:2]
    scale = min(internal_size / min(h, w), MAX_ASPECT * internal_size / max(h, w))
    size = (max(16, round(h * scale)), max(16, round(w * scale)))
    image = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
    image = (image - torch.from_numpy(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.from_numpy(IMAGENET_STD).view(1, 3, 1, 1)
    pad_h, pad_w = (-size[0]) % 16, (-size[1]) % 16
    return F.pad(image, (0, pad_w, 0, pad_h)), size


@dataclass
class _Object:
    token: torch.Tensor  # [1, 1, d]
    bank: MemoryBank
    last: list[torch.Tensor] | None = None  # temporary memory: the last frame's per-layer tokens


@dataclass
class _State:
    objects: list[_Object] = field(default_factory=list)
    query: tuple | None = None  # the current frame's prepared image
    net: JointFormer | None = None  # this video's adapted copy of the network (adapt_steps > 0)
    adapt_seconds: float = 0.0


class JointFormerPropagator:
    """Args: net (a trained ``JointFormer``), internal_size, top_k (memory keys per query at
    inference, None for dense), mem_every, max_memory_frames (beside the first frame), adapt_steps
    (first-frame adaptation steps, 0: none), adapt_lr and adapt_seed (the dreamed clips' seed)."""

    name = "jointformer"

    def __init__(self, net: JointFormer, internal_size: int = 480, top_k: int | None = 60, mem_every: int = 5, max_memory_frames: int = 1, adapt_steps: int = 0, adapt_lr: float = 1e-4, adapt_seed: int = 0) -> None:
        try:
            check_inference_settings({"internal_size": internal_size, "top_k": top_k, "mem_every": mem_every, "max_memory_frames": max_memory_frames, "adapt_steps": adapt_steps, "adapt_lr": adapt_lr})
        except ValueError as err:
            raise ValueError(f"JointFormerPropagator: {err}") from None
        self.net = net.eval()
        self.internal_size, self.top_k, self.mem_every, self.max_memory_frames = internal_size, top_k, mem_every, max_memory_frames
        self.adapt_steps, self.adapt_lr, self.adapt_seed = adapt_steps, adapt_lr, adapt_seed

    def new_state(self) -> _State:
        return _State()

    def _net(self, state: _State) -> JointFormer:
        return state.net if state.net is not None else self.net

    def _adapt(self, state: _State, frame: np.ndarray, masks: np.ndarray, size: tuple[int, int]) -> None:
        """Fine-tune a copy of the network on clips dreamed from this annotated frame."""
        from mnemovision.vos.adapt import adapt_jointformer

        start = time.perf_counter()
        state.net = copy.deepcopy(self.net)
        work = tuple(max(16, 16 * round(side / 16)) for side in size)
        with torch.enable_grad():
            adapt_jointformer(state.net, frame, masks, work, self.adapt_steps, lr=self.adapt_lr, seed=self.adapt_seed)
        state.adapt_seconds += time.perf_counter() - start

    def _memory(self, obj: _Object) -> list[torch.Tensor] | None:
        per_layer = []
        for i in range(len(self.net.blocks3)):
            parts = [e.tensors[f"layer{i}"] for e in obj.bank.entries] + ([obj.last[i]] if obj.last is not None else [])
            if not parts:
                return None
            per_layer.append(torch.cat(parts, 0)[None])
        return per_layer

    @torch.no_grad()
    def propagate(self, state: _State, frame: np.ndarray, frame_index: int, n_objects: int) -> np.ndarray:
        image, size = prepare_frame(frame, self.internal_size)
        net = self._net(state)
        probs = []
        for obj in state.objects[:n_objects]:
            f4, f8, f16, grid = net.read(image, self._memory(obj), self.top_k)
            logits, fusion = net.segment(f4, f8, f16, grid, obj.token)
            obj.token = net.update_token(obj.token, fusion)
            prob = torch.sigmoid(logits[..., : size[0], : size[1]])
            probs.append(F.interpolate(prob, size=frame.shape[:2], mode="bilinear", align_corners=False)[0, 0].numpy())
        return np.stack(probs).astype(np.float64)

    @torch.no_grad()
    def memorize(self, state: _State, frame: np.ndarray, frame_index: int, masks: np.ndarray, annotated: bool) -> None:
        image, size = prepare_frame(frame, self.internal_size)
        if annotated and self.adapt_steps and state.net is None:
            self._adapt(state, frame, masks, size)
        net = self._net(state)
        masks_t = torch.from_numpy(masks.astype(np.float32))[None]  # [1, K, H, W]
        masks_t = F.interpolate(masks_t, size=size, mode="bilinear", align_corners=False)
        masks_t = F.pad(masks_t, (0, image.shape[-1] - size[1], 0, image.shape[-2] - size[0]))
        total = masks_t.sum(1, keepdim=True)
        for k in range(masks.shape[0]):
            if k >= len(state.objects):  # a new object: fresh token, empty bank
                state.objects.append(_Object(net.new_token(1).clone(), MemoryBank(self.max_memory_frames + 1, "keep_first")))
            obj = state.objects[k]
            own = masks_t[:, k : k + 1]
            cache, obj.token = net.encode_memory(image, torch.cat([own, total - own], 1), obj.token)
            first = len(obj.bank) == 0
            stored = (first or annotated or frame_index % self.mem_every == 0) and obj.bank.add(
                frame_index, {f"layer{i}": c[0] for i, c in enumerate(cache)}, permanent=first)
            obj.last = None if stored else [c[0] for c in cache]  # the temporary memory: the last frame

    def remove_object(self, state: _State, index: int) -> None:
        del state.objects[index]


FORMAT = "mnemovision-jointformer/1"


INFERENCE_KEYS = ("internal_size", "top_k", "mem_every", "max_memory_frames", "adapt_steps", "adapt_lr")
LOWEST = {"internal_size": 16, "mem_every": 1, "max_memory_frames": 0, "adapt_steps": 0}  # each an int


def check_inference_settings(settings: dict) -> None:
    """ValueError naming the first of ``settings`` out of its range: ``internal_size`` an int >= 16
    (the network's stride), ``mem_every`` >= 1, ``max_memory_frames`` and ``adapt_steps`` >= 0,
    ``top_k`` None (dense) or an int >= 1, ``adapt_lr`` a positive finite number."""
    for name, low in LOWEST.items():
        if name in settings:
            check_int(name, settings[name], low)
    top_k = settings.get("top_k")
    if top_k is not None and not (is_int(top_k) and top_k >= 1):
        raise ValueError(f"top_k must be None (dense) or an int >= 1, got {top_k!r}")
    if "adapt_lr" in settings:
        check_real("adapt_lr", settings["adapt_lr"], 0, low_open=True)


def save_jointformer(path, net: JointFormer, size: str, dtype: torch.dtype = torch.float16, inference: dict | None = None) -> None:
    """The network's weights as safetensors (``dtype``, float16 by default) with its size in the
    metadata, and ``inference``: the ``JointFormerPropagator`` settings it was made for (e.g. the
    training resolution as ``internal_size``), which ``load_model`` uses unless told otherwise."""
    import json

    from mnemovision.vision.checkpoints import save_safetensors

    unknown = set(inference or {}) - set(INFERENCE_KEYS)
    if unknown:
        raise ValueError(f"save_jointformer: unknown inference settings {sorted(unknown)}; expected some of {INFERENCE_KEYS}")
    tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in net.state_dict().items()}
    save_safetensors(path, tensors, {"format": FORMAT, "size": size, "inference": json.dumps(inference or {})})


def inference_settings(path) -> dict:
    """The propagator settings stored by ``save_jointformer`` (empty for files without them).

    Raises:
        CheckpointError: the ``inference`` metadata field is not a JSON object of known settings in
            their ranges (``check_inference_settings``).
    """
    import json

    from mnemovision.vision.checkpoints import read_safetensors_metadata
    from mnemovision.vision.errors import CheckpointError

    text = read_safetensors_metadata(path).get("inference", "{}")
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: metadata field 'inference' is not JSON ({err})") from None
    if not isinstance(settings, dict) or set(settings) - set(INFERENCE_KEYS):
        raise CheckpointError(f"{path}: metadata field 'inference' must be a JSON object with keys among {INFERENCE_KEYS}, got {text!r}")
    try:
        check_inference_settings(settings)
    except ValueError as err:
        raise CheckpointError(f"{path}: metadata field 'inference': {err}") from None
    return settings


def load_jointformer(path) -> JointFormer:
    """Build the size named in the file and load its weights strictly (as float32).

    Raises:
        CheckpointError: not a file written by ``save_jointformer`` (format/size fields), or keys that
            do not match the architecture.
    """
    from mnemovision.vision.checkpoints import load_safetensors, load_state_dict_strict, read_safetensors_metadata
    from mnemovision.vision.errors import CheckpointError
    from mnemovision.vos.models import build_jointformer

    state = load_safetensors(path)
    meta = read_safetensors_metadata(path)
    if meta.get("format") != FORMAT or "size" not in meta:
        raise CheckpointError(f"{path}: metadata field 'format' is {meta.get('format')!r}, expected {FORMAT!r} with a 'size' (write it with save_jointformer)")
    try:
        net = build_jointformer(meta["size"])
    except ValueError as err:
        raise CheckpointError(f"{path}: metadata field 'size': {err}") from None
    load_state_dict_strict(net, {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, source=str(path))
    return net.eval()
