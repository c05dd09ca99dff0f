"""The inference API: one ``VOSSession`` per video, numpy in and out, any propagation model behind it.

    session = VOSSession(load_model("flow"))
    session.add_mask(0, first_mask)              # [H, W] uint8 ids; objects may join at later frames
    for frame in frames:                         # [H, W, 3] uint8, in order
        ids = session.step(frame)                # [H, W] uint8 ids
    session.remove_object(2); session.reset()

A model implements ``VOSModel``: it keeps per-video state in an object it creates (``new_state``),
predicts per-object probabilities for a frame (``propagate``) and memorises frames with their final
masks (``memorize``), holding frames in a ``MemoryBank`` with a hard capacity where it keeps any.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mnemovision.vision.checks import is_int
from mnemovision.vision.io import mask_ids


class VOSModel(Protocol):
    name: str

    def new_state(self) -> Any: ...

    def propagate(self, state: Any, frame: np.ndarray, frame_index: int, n_objects: int) -> np.ndarray:
        """[n_objects, H, W] float probabilities of the known objects in ``frame``."""

    def memorize(self, state: Any, frame: np.ndarray, frame_index: int, masks: np.ndarray, annotated: bool) -> None:
        """Remember ``frame`` with its final per-object masks [n_objects, H, W] (bool or float)."""

    def remove_object(self, state: Any, index: int) -> None:
        """Forget object number ``index`` (0-based position among the known objects)."""


def aggregate(probs: np.ndarray) -> np.ndarray:
    """Soft aggregation of per-object probabilities [K, H, W] -> [K + 1, H, W] (``aggregate_probs``)."""
    import torch

    return aggregate_probs(torch.from_numpy(np.asarray(probs, dtype=np.float64)), dim=0).numpy()


def aggregate_probs(probs, dim: int = 1):
    """Soft aggregation (STM / XMem / JointFormer) of per-object probabilities along ``dim`` (a torch
    tensor, e.g. [B, K, H, W]) into background-first probabilities with K + 1 entries along ``dim``:
    background = prod(1 - p_k), each clamped to [1e-7, 1 - 1e-7], then a softmax of the logits."""
    import torch

    probs = probs.clamp(1e-7, 1 - 1e-7)
    background = torch.prod(1 - probs, dim=dim, keepdim=True)
    stacked = torch.cat([background, probs], dim=dim).clamp(1e-7, 1 - 1e-7)
    return torch.softmax(torch.log(stacked / (1 - stacked)), dim=dim)


class VOSSession:
    """Segments one video frame by frame. Object ids are the values of the masks given (1..254)."""

    def __init__(self, model: VOSModel) -> None:
        self.model = model
        self.reset()

    def reset(self) -> None:
        """Forget the video: objects, pending masks, the model's memory."""
        self.state = self.model.new_state()
        self.object_ids: list[int] = []
        self.pending: dict[int, list[tuple[np.ndarray, list[int]]]] = {}
        self.next_index = 0
        self.frame_size: tuple[int, int] | None = None  # (H, W) of this video's frames

    def add_mask(self, frame_index: int, mask: np.ndarray, object_ids: list[int] | None = None) -> None:
        """Give the masks of ``object_ids`` (default: every nonzero id in ``mask``) at ``frame_index``
        (the frame ``step`` processes next, or a later one). Known ids are corrected there; new ids
        join the video from that frame on."""
        mask = mask_ids(mask)
        if not is_int(frame_index):
            raise ValueError(f"frame_index must be an int, got {frame_index!r}")
        if frame_index < self.next_index:
            raise ValueError(f"frame {frame_index} is already processed (next is {self.next_index}); masks can be given for the next frame or later")
        if object_ids is not None and not all(is_int(i) for i in object_ids):
            raise ValueError(f"object ids must be ints, got {list(object_ids)}")
        ids = sorted(int(i) for i in np.unique(mask) if i != 0) if object_ids is None else [int(i) for i in object_ids]
        if any(not 0 < i < 255 for i in ids):
            raise ValueError(f"object ids must be in 1..254, got {ids}")
        self.pending.setdefault(frame_index, []).append((mask, ids))

    def remove_object(self, object_id: int) -> None:
        if object_id not in self.object_ids:
            raise KeyError(f"object {object_id} is not tracked (tracked: {self.object_ids})")
        index = self.object_ids.index(object_id)
        self.model.remove_object(self.state, index)
        del self.object_ids[index]

    def step(self, frame: np.ndarray) -> np.ndarray:
        """Segment the next frame [H, W, 3] uint8 -> [H, W] uint8 ids."""
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or frame.size == 0:
            raise ValueError(f"frame must be [H, W, 3] uint8 with H, W >= 1, got shape {list(frame.shape)} dtype {frame.dtype}")
        t = self.next_index
        h, w = frame.shape[:2]
        if self.frame_size is None:
            self.frame_size = (h, w)
        elif self.frame_size != (h, w):
            raise ValueError(f"frame {t} is {w}x{h}, this video's frames are {self.frame_size[1]}x{self.frame_size[0]} (reset() starts a new video)")
        probs = self.model.propagate(self.state, frame, t, len(self.object_ids)) if self.object_ids else np.zeros((0, h, w))
        given = self.pending.pop(t, [])
        annotated = bool(given)
        for mask, ids in given:
            if mask.shape != (h, w):
                raise ValueError(f"mask for frame {t} is {mask.shape[1]}x{mask.shape[0]}, the frame {w}x{h}")
            for object_id in ids:
                if object_id not in self.object_ids:
                    self.object_ids.append(object_id)
                    probs = np.concatenate([probs, np.zeros((1, h, w))])
            probs[:, np.isin(mask, ids)] = 0.0  # a given mask decides its pixels for every object
            for object_id in ids:
                probs[self.object_ids.index(object_id)] = mask == object_id  # and all of its objects' pixels
        if not self.object_ids:
            self.next_index += 1
            return np.zeros((h, w), dtype=np.uint8)
        labels = aggregate(probs).argmax(axis=0)
        ids = np.array([0, *self.object_ids], dtype=np.uint8)[labels]
        final = np.stack([ids == object_id for object_id in self.object_ids])
        self.model.memorize(self.state, frame, t, final, annotated)
        self.next_index += 1
        return ids


SHIPPED_JOINTFORMER = Path(__file__).resolve().parent / "weights" / "jointformer_tiny.safetensors"


def _construct(factory, name: str, options: dict, *args, **stored):
    """``factory(*args, **{**stored, **options})``, after checking that ``options`` are keyword
    arguments ``factory`` takes (otherwise a TypeError, as Python raises for an unexpected keyword,
    naming the model, the options it does not take and those it does)."""
    import inspect

    accepted = list(inspect.signature(factory).parameters)[len(args):]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"VOS model {name!r} does not take the option(s) {unknown}; it takes {accepted or 'none'}")
    return factory(*args, **{**stored, **options})


def load_model(name: str = "flow", **options) -> VOSModel:
    """``copy-first``, ``flow`` (dense optical flow, OpenCV DIS), ``jointformer`` (the shipped tiny
    model) or a JointFormer ``.safetensors`` file; ``options`` go to the model (e.g. ``top_k``,
    ``internal_size``, ``max_memory_frames``, ``adapt_steps`` for JointFormer, ``method`` for flow;
    an option the model does not take is a TypeError). A JointFormer file's stored inference settings
    (its training resolution, ...) apply unless ``options`` override them."""
    from mnemovision.vos import baselines

    if name == "copy-first":
        return _construct(baselines.CopyFirst, name, options)
    if name == "flow":
        return _construct(baselines.FlowPropagation, name, options)
    path = SHIPPED_JOINTFORMER if name == "jointformer" else Path(name)
    if path.suffix == ".safetensors":
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such JointFormer weights file")
        from mnemovision.vos.jointformer_model import JointFormerPropagator, inference_settings, load_jointformer

        return _construct(JointFormerPropagator, name, options, load_jointformer(path), **inference_settings(path))
    raise ValueError(f"unknown VOS model {name!r}: use 'copy-first', 'flow', 'jointformer' or a JointFormer .safetensors file")
