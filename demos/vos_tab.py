"""Video object segmentation tab: load a video (or the bundled clip), paint the object on the first
frame (optionally refined by SAM when a checkpoint is configured), propagate through the video, and
download the masks (palette PNGs in a zip) and the overlay video."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from mnemovision.vision.io import overlay_mask, read_video, write_mask, write_video
from mnemovision.vos import api

TITLE = "Video segmentation"
MAX_FRAMES = 150
MAX_SIDE = 480
SAM_ENV = "MNEMOVISION_SAM_CHECKPOINT"  # path to a segment-anything ViT checkpoint (never downloaded)


def bundled_clip(n_frames: int = 24, size: int = 192) -> np.ndarray:
    """A deterministic clip [T, S, S, 3] uint8 made from scikit-image's photographs: a textured
    object moving and deforming over a background (the training clips' generator, one object)."""
    from mnemovision.vos.clips import SyntheticClips, denormalise

    return denormalise(SyntheticClips(length=1, size=size, frames=n_frames, objects=1, motion=2.0 / n_frames, seed=7)[0]["inputs"])


def load_frames(video: str | None, use_bundled: bool) -> np.ndarray:
    """[T, H, W, 3] uint8 of the uploaded video (at most MAX_FRAMES, longer side at most MAX_SIDE) or the bundled clip."""
    if use_bundled or not video:
        return bundled_clip()
    frames, _ = read_video(video, max_frames=MAX_FRAMES)
    h, w = frames.shape[1:3]
    if max(h, w) > MAX_SIDE:
        import cv2

        scale = MAX_SIDE / max(h, w)
        frames = np.stack([cv2.resize(f, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) for f in frames])
    return frames


def painted_mask(editor: dict | None, shape: tuple[int, int]) -> np.ndarray:
    """The brush strokes of an ImageEditor value (every layer it holds; a missing layer is empty) as a
    [H, W] bool mask of the frame's size."""
    strokes = np.zeros(shape, bool)
    for layer in (editor or {}).get("layers") or []:
        if layer is None:
            continue
        layer = np.asarray(layer)
        if layer.ndim == 3 and layer.shape[-1] == 4:
            painted = layer[..., 3] > 0  # painted pixels are opaque on a transparent layer
        elif layer.ndim == 3:
            painted = layer.any(-1)
        else:
            painted = layer > 0
        if painted.shape != shape:
            import cv2

            painted = cv2.resize(painted.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)
        strokes |= painted
    return strokes


def refine_with_sam(frame: np.ndarray, strokes: np.ndarray) -> np.ndarray:
    """SAM's mask for the box around the strokes (segment-anything, local checkpoint from $MNEMOVISION_SAM_CHECKPOINT)."""
    checkpoint = os.environ.get(SAM_ENV)
    if not checkpoint or not Path(checkpoint).exists():
        raise FileNotFoundError(f"SAM needs a local checkpoint: set {SAM_ENV} to a segment-anything ViT .pth file")
    from segment_anything import SamPredictor, sam_model_registry

    kind = next((k for k in ("vit_h", "vit_l", "vit_b") if k in Path(checkpoint).name), "vit_b")
    predictor = SamPredictor(sam_model_registry[kind](checkpoint=checkpoint))
    predictor.set_image(frame)
    ys, xs = np.nonzero(strokes)
    masks, scores, _ = predictor.predict(box=np.array([xs.min(), ys.min(), xs.max(), ys.max()]), multimask_output=True)
    return masks[int(np.argmax(scores))]


# dropdown label -> (api.load_model name, options): the shipped JointFormer with its first-frame
# adaptation (its stored default) or without it (no wait before the first frame)
MODEL_CHOICES = {"jointformer": ("jointformer", {}), "jointformer (no adaptation)": ("jointformer", {"adapt_steps": 0})}


def propagate(frames: np.ndarray, first_mask: np.ndarray, model_name: str, workdir: Path, progress=None) -> tuple[str, str, str]:
    """Segment every frame from the first frame's mask; returns (overlay MP4 path, masks zip path, summary)."""
    name, options = MODEL_CHOICES.get(model_name, (model_name, {}))
    model = api.load_model(name, **options)
    session = api.VOSSession(model)
    session.add_mask(0, first_mask.astype(np.uint8))
    if progress is not None and getattr(model, "adapt_steps", 0):
        progress((0, len(frames)), desc="adapting the model to the first frame")
    out_dir = workdir / "masks"
    out_dir.mkdir(parents=True, exist_ok=True)
    overlays = []
    for t, frame in enumerate(frames):
        ids = session.step(frame)
        write_mask(out_dir / f"{t:05d}.png", ids)
        overlays.append(overlay_mask(frame, ids))
        if progress is not None:
            progress((t + 1, len(frames)), desc="propagating")
    video = workdir / "overlay.mp4"
    write_video(video, overlays, fps=12)
    archive = workdir / "masks.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for png in sorted(out_dir.glob("*.png")):
            handle.write(png, png.name)
    return str(video), str(archive), f"{len(frames)} frames segmented with **{model_name}**; masks in `{archive.name}`"


def first_frame(video: str | None, use_bundled: bool) -> tuple[np.ndarray | None, dict | None, str]:
    """The Load button: (frames, the editor's value with the first frame to paint on, status)."""
    try:
        frames = load_frames(video, use_bundled)
    except (OSError, ValueError) as err:
        return None, None, f"**Error**: {err}"
    return frames, {"background": frames[0], "layers": [], "composite": frames[0]}, f"{len(frames)} frames, {frames.shape[2]}x{frames.shape[1]}: paint the object on the first frame."


def segment(frames: np.ndarray | None, painting: dict | None, model_name: str, sam: bool, workdir: Path, progress=None) -> tuple[str | None, str | None, str]:
    """The Propagate button: (overlay video, masks zip, status) of a run in a fresh folder under
    ``workdir``; what is missing or fails is explained in the status instead."""
    if frames is None:
        return None, None, "Load a video (or the bundled clip) first."
    mask = painted_mask(painting, frames.shape[1:3])
    if not mask.any():
        return None, None, "Paint the object on the first frame first."
    try:
        if sam:
            mask = refine_with_sam(frames[0], mask)
        return propagate(frames, mask, model_name, workdir / f"run_{np.random.default_rng().integers(1 << 30)}", progress)
    except (OSError, ValueError) as err:
        return None, None, f"**Error**: {err}"


def build(workdir: Path) -> None:
    import gradio as gr

    gr.Markdown(
        "Paint the object on the first frame, then propagate it through the video (optical flow, the copy "
        f"baseline, or a JointFormer when its weights are present: it first adapts to the painted frame, about half a minute on a laptop CPU). SAM refines the painting when `{SAM_ENV}` "
        f"points to a local checkpoint. Uploaded videos are cut to {MAX_FRAMES} frames and {MAX_SIDE} px."
    )
    frames_state = gr.State(None)
    with gr.Row():
        with gr.Column():
            video = gr.Video(label="Video", elem_id="vos-video")
            bundled = gr.Checkbox(value=True, label="Use the bundled clip", elem_id="vos-bundled")
            load = gr.Button("Load first frame", elem_id="vos-load")
            models = ["flow", "copy-first"] + (list(MODEL_CHOICES) if api.SHIPPED_JOINTFORMER.exists() else [])
            model = gr.Dropdown(models, value="flow", label="Model", elem_id="vos-model")
            use_sam = gr.Checkbox(value=False, label="Refine the painting with SAM", elem_id="vos-sam")
            run = gr.Button("Propagate", variant="primary", elem_id="vos-run")
            status = gr.Markdown(elem_id="vos-status")
        with gr.Column():
            editor = gr.ImageEditor(label="First frame: paint the object", type="numpy", sources=(), layers=False, elem_id="vos-editor",
                                    brush=gr.Brush(colors=["#ff0000"], default_size=12, color_mode="fixed"))
            result = gr.Video(label="Overlay", elem_id="vos-result")
            masks = gr.File(label="Masks (zip of palette PNGs)", elem_id="vos-masks")

    def on_run(frames, painting, model_name, sam, progress=gr.Progress()):
        return segment(frames, painting, model_name, sam, workdir, progress)

    load.click(first_frame, inputs=[video, bundled], outputs=[frames_state, editor, status])
    run.click(on_run, inputs=[frames_state, editor, model, use_sam], outputs=[result, masks, status])
