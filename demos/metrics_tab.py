"""Metrics tab: PSNR / SSIM (RGB and BT.601 Y, BasicSR convention) of two uploaded images, with an
error map, or per-frame PSNR / SSIM of two uploaded videos, with a curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnemovision.vision.io import write_image
from mnemovision.vision.metrics import compare_images, compare_videos
from mnemovision.vision.plots import save_curve

TITLE = "Metrics"


def image_report(pred: np.ndarray | None, target: np.ndarray | None, crop_border: int, workdir: Path) -> tuple[str, str | None]:
    """Markdown table of the image metrics and the path of an error-map PNG."""
    if pred is None or target is None:
        return "Upload a prediction and a reference image.", None
    if crop_border is None:
        return "Enter a crop border (0 or more pixels).", None
    pred, target = _rgb(pred), _rgb(target)
    if pred.shape != target.shape:
        return f"**Sizes differ**: prediction {pred.shape[1]}x{pred.shape[0]}, reference {target.shape[1]}x{target.shape[0]}.", None
    try:
        metrics = compare_images(pred, target, crop_border=_whole(crop_border))
    except ValueError as err:
        return f"**Error**: {err}", None
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "error_map.png"
    write_image(out, error_map(pred, target))
    rows = "\n".join(f"| {name} | {_fmt(value)} |" for name, value in metrics.items())
    return f"| metric | value |\n|---|---|\n{rows}\n", str(out)


def error_map(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mean absolute RGB error [H, W] coloured with 'inferno', scaled to its 99th percentile."""
    from matplotlib import colormaps

    error = np.abs(pred.astype(np.float32) - target.astype(np.float32)).mean(-1)
    scale = max(float(np.percentile(error, 99)), 1.0)
    return colormaps["inferno"](np.clip(error / scale, 0.0, 1.0))[..., :3].astype(np.float32)


def video_report(pred_path: str | None, target_path: str | None, workdir: Path) -> tuple[str, str | None]:
    """Markdown summary of per-frame video metrics and the path of a PSNR-per-frame curve PNG."""
    if not pred_path or not target_path:
        return "Upload a prediction and a reference video.", None
    try:
        result = compare_videos(pred_path, target_path)
    except (ValueError, OSError) as err:
        return f"**Error**: {err}", None
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "psnr_per_frame.png"
    frames = list(range(result.frames))
    save_curve(out, {"PSNR": (frames, [min(v, 100.0) for v in result.psnr])}, "frame", "PSNR (dB)", "PSNR per frame")
    text = (
        f"| metric | value |\n|---|---|\n| frames | {result.frames} |\n| fps | {result.fps:.2f} |\n"
        f"| mean psnr | {_fmt(result.mean_psnr)} |\n| mean ssim | {_fmt(result.mean_ssim)} |\n"
    )
    return text, str(out)


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return image[..., :3].astype(np.uint8)


def _whole(value):
    """A Gradio number as an int when it is a whole float (the field sends 2.0); anything else as it came,
    for the metric's own check to refuse by name."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _fmt(value: float) -> str:
    return f"{value:.4f}"  # an infinite PSNR (identical images) prints as "inf"


def build(workdir: Path) -> None:
    import gradio as gr

    gr.Markdown("Compare a prediction with its reference. Images: PSNR and SSIM on RGB and on the BT.601 Y channel (BasicSR convention: uint8, optional border crop). Videos: per-frame PSNR and SSIM.")
    with gr.Tab("Images"):
        with gr.Row():
            pred = gr.Image(label="Prediction", type="numpy", elem_id="metrics-pred")
            target = gr.Image(label="Reference", type="numpy", elem_id="metrics-target")
        crop = gr.Number(label="Crop border (pixels)", value=0, precision=0, minimum=0, elem_id="metrics-crop")
        button = gr.Button("Compute metrics", variant="primary", elem_id="metrics-compute")
        with gr.Row():
            table = gr.Markdown(elem_id="metrics-table")
            error_map = gr.Image(label="Error map", type="filepath", elem_id="metrics-error-map")
        button.click(lambda p, t, c: image_report(p, t, c, workdir), inputs=[pred, target, crop], outputs=[table, error_map])
    with gr.Tab("Videos"):
        with gr.Row():
            pred_video = gr.Video(label="Prediction", elem_id="metrics-pred-video")
            target_video = gr.Video(label="Reference", elem_id="metrics-target-video")
        video_button = gr.Button("Compare videos", variant="primary", elem_id="metrics-compare-videos")
        with gr.Row():
            video_table = gr.Markdown(elem_id="metrics-video-table")
            curve = gr.Image(label="PSNR per frame", type="filepath", elem_id="metrics-curve")
        video_button.click(lambda p, t: video_report(p, t, workdir), inputs=[pred_video, target_video], outputs=[video_table, curve])
