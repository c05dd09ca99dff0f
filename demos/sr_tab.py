"""Super-resolution tab: upscale an image x2 with bicubic, the dense EDSR-baseline and the ISS-P
pruned one (optionally pruned further, without fine-tuning), side by side with a zoom crop and
PSNR-Y / SSIM-Y when a reference is given."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mnemovision.sr import api
from mnemovision.vision.metrics import image_psnr, image_ssim
from mnemovision.vision.photos import as_rgb_uint8
from mnemovision.vision.resize import bicubic_lr

TITLE = "Super-resolution"
SCALE = 2
ZOOM = 48  # side of the zoom crop in output pixels, shown 4x enlarged


def zoom_crop(image: np.ndarray, center: tuple[float, float], size: int = ZOOM, factor: int = 4) -> np.ndarray:
    """A ``size`` x ``size`` crop around ``center`` (fractions of height, width), enlarged ``factor``x (nearest)."""
    h, w = image.shape[:2]
    size = min(size, h, w)
    y = int(np.clip(center[0] * h - size / 2, 0, h - size))
    x = int(np.clip(center[1] * w - size / 2, 0, w - size))
    crop = image[y : y + size, x : x + size]
    return np.repeat(np.repeat(crop, factor, axis=0), factor, axis=1)


def _scores(out: np.ndarray, reference: np.ndarray) -> str:
    """' PSNR-Y | SSIM-Y |' table cells; 'n/a' with the reason for images too small to score."""
    try:
        return f" {image_psnr(out, reference, crop_border=SCALE, y_channel=True):.2f} | {image_ssim(out, reference, crop_border=SCALE, y_channel=True):.4f} |"
    except ValueError as err:
        return f" n/a | n/a ({err}) |"


def compare(lr: np.ndarray | None, reference: np.ndarray | None, sparsity: float, zoom_y: float = 0.5, zoom_x: float = 0.5) -> tuple[list, str]:
    """Upscale with the three models; returns ([(image, caption)] for full images and zoom crops,
    markdown table). With only a reference, the LR input is made from it (MATLAB bicubic)."""
    try:
        if reference is not None:
            reference = as_rgb_uint8(reference, "reference image")
            if lr is None:
                lr, reference = bicubic_lr(reference, SCALE)
    except ValueError as err:
        return [], f"**Error**: {err}"
    if lr is None:
        return [], "Upload a low-resolution image, or a reference (high-resolution) image to downscale."
    lr = np.asarray(lr)
    if reference is not None and reference.shape[:2] != (lr.shape[0] * SCALE, lr.shape[1] * SCALE):
        h, w = lr.shape[0] * SCALE, lr.shape[1] * SCALE
        if reference.shape[0] < h or reference.shape[1] < w:
            return [], f"**Error**: the reference is {reference.shape[1]}x{reference.shape[0]}, smaller than the input x{SCALE} ({w}x{h})."
        reference = reference[:h, :w]
    try:
        models = [api.load_upscaler("bicubic", SCALE), api.load_upscaler("shipped-dense"), api.load_upscaler("shipped")]
    except FileNotFoundError as err:
        return [], f"**Error**: {err}"
    if sparsity > float(models[2].meta.get("sparsity", 0)) + 1e-6:
        models[2] = api.pruned_further(models[2], sparsity)
    rows, full, crops = [], [], []
    for model in models:
        start = time.perf_counter()
        try:
            out = model(lr, "uploaded image")
        except ValueError as err:
            return [], f"**Error**: {err}"
        seconds = time.perf_counter() - start
        full.append((out, model.name))
        crops.append((zoom_crop(out, (zoom_y, zoom_x)), f"zoom: {model.name}"))
        row = f"| {model.name} | {seconds * 1000:.0f} ms |"
        if reference is not None:
            row += _scores(out, reference)
        rows.append(row)
    header = "| model | time |" + (" PSNR-Y (dB) | SSIM-Y |\n|---|---|---|---|" if reference is not None else "\n|---|---|")
    if reference is not None:
        crops.append((zoom_crop(reference, (zoom_y, zoom_x)), "zoom: reference"))
    return full + crops, header + "\n" + "\n".join(rows)


def build(workdir: Path) -> None:
    import gradio as gr

    gr.Markdown(
        f"x{SCALE} super-resolution with EDSR-baseline trained on CPU with mnemovision's recipe: dense, and "
        "trained 90% sparse with ISS-P (shipped compressed, 0.7 MB). Raise the sparsity to prune the "
        "ISS-P model further without fine-tuning. Give a reference image to score PSNR-Y / SSIM-Y "
        "(BasicSR convention); with only a reference, the input is made from it by MATLAB bicubic."
    )
    with gr.Row():
        lr = gr.Image(label="Low-resolution input", type="numpy", elem_id="sr-input")
        reference = gr.Image(label="Reference (optional, high resolution)", type="numpy", elem_id="sr-reference")
    with gr.Row():
        sparsity = gr.Slider(0.9, 0.99, value=0.9, step=0.01, label="Sparsity of the pruned model", elem_id="sr-sparsity")
        zoom_y = gr.Slider(0, 1, value=0.5, step=0.05, label="Zoom centre (vertical)", elem_id="sr-zoom-y")
        zoom_x = gr.Slider(0, 1, value=0.5, step=0.05, label="Zoom centre (horizontal)", elem_id="sr-zoom-x")
    button = gr.Button("Upscale", variant="primary", elem_id="sr-run")
    table = gr.Markdown(elem_id="sr-table")
    gallery = gr.Gallery(label="bicubic | dense | pruned, then zoom crops", columns=4, elem_id="sr-gallery")
    button.click(compare, inputs=[lr, reference, sparsity, zoom_y, zoom_x], outputs=[gallery, table])
