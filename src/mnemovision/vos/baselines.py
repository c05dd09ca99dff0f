"""The two honest baselines every VOS table needs: copy the given masks forward, and propagate them
with dense optical flow (OpenCV DIS, backward flow, bilinear warping of the soft masks)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class _CopyState:
    masks: list[np.ndarray] = field(default_factory=list)  # last given mask per object


class CopyFirst:
    """Each object keeps the mask it was last given (the first-frame mask, on DAVIS)."""

    name = "copy-first"

    def new_state(self) -> _CopyState:
        return _CopyState()

    def propagate(self, state: _CopyState, frame: np.ndarray, frame_index: int, n_objects: int) -> np.ndarray:
        return np.stack(state.masks[:n_objects]).astype(np.float64)

    def memorize(self, state: _CopyState, frame: np.ndarray, frame_index: int, masks: np.ndarray, annotated: bool) -> None:
        if annotated or len(state.masks) < len(masks):
            state.masks = [m.copy() for m in masks]

    def remove_object(self, state: _CopyState, index: int) -> None:
        del state.masks[index]


@dataclass
class _FlowState:
    gray: np.ndarray | None = None
    masks: np.ndarray | None = None  # [K, H, W] float


DIS_MIN_SIDE = 16


class FlowPropagation:
    """Warp the previous frame's masks into the current frame along dense optical flow.

    Args:
        method: ``dis`` (OpenCV DIS, preset medium) or ``farneback``.
    """

    name = "flow"

    def __init__(self, method: str = "dis") -> None:
        if method not in ("dis", "farneback"):
            raise ValueError(f"method must be 'dis' or 'farneback', got {method!r}")
        self.method = method

    def new_state(self) -> _FlowState:
        return _FlowState()

    def _flow(self, current: np.ndarray, previous: np.ndarray) -> np.ndarray:
        import cv2

        if self.method == "dis":
            # DIS refuses images below about 12 pixels a side: pad (edge values) and crop the flow
            h, w = current.shape
            pad = ((0, max(0, DIS_MIN_SIDE - h)), (0, max(0, DIS_MIN_SIDE - w)))
            current, previous = np.pad(current, pad, mode="edge"), np.pad(previous, pad, mode="edge")
            return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(current, previous, None)[:h, :w]
        return cv2.calcOpticalFlowFarneback(current, previous, None, 0.5, 4, 21, 3, 5, 1.1, 0)

    def propagate(self, state: _FlowState, frame: np.ndarray, frame_index: int, n_objects: int) -> np.ndarray:
        import cv2

        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        flow = self._flow(gray, state.gray)  # current pixel x looks up previous pixel x + flow(x)
        h, w = gray.shape
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        map_x, map_y = xs + flow[..., 0], ys + flow[..., 1]
        warped = [cv2.remap(m.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0) for m in state.masks[:n_objects]]
        return np.stack(warped).astype(np.float64)

    def memorize(self, state: _FlowState, frame: np.ndarray, frame_index: int, masks: np.ndarray, annotated: bool) -> None:
        import cv2

        state.gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        state.masks = masks.astype(np.float32)

    def remove_object(self, state: _FlowState, index: int) -> None:
        state.masks = np.delete(state.masks, index, axis=0)
