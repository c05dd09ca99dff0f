"""Gaussian splatting tab: fit the bundled scene (or an uploaded transforms.json / COLMAP scene zip)
with a live progress bar and preview, or load a 3DGS PLY; then orbit the result with a slider."""

from __future__ import annotations

import queue
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mnemovision.splatting import api

TITLE = "Gaussian splatting"
BUNDLED = "Bundled scene"
UPLOAD = "Uploaded scene (.zip) or PLY"
PREVIEW_EVERY = 10


def unpack_scene(upload: str, workdir: Path) -> Path:
    """Extract an uploaded scene zip under ``workdir`` (refusing paths that leave it); returns the scene root."""
    target = workdir / f"upload_{Path(upload).stem}"
    with zipfile.ZipFile(upload) as archive:
        for member in archive.namelist():
            resolved = (target / member).resolve()
            if not resolved.is_relative_to(target.resolve()):
                raise ValueError(f"{Path(upload).name}: member {member!r} points outside the archive folder")
        archive.extractall(target)
    return api.find_scene_root(target)


def _frame(model, angle: float, cameras) -> np.ndarray:
    return api.orbit_frame(model, float(angle), size=(256, 256), cameras=cameras)


def train(source: str, upload: str | None, iterations: int, workdir: Path, progress=None) -> Iterator[tuple]:
    """Generator of (status markdown, preview image, metrics markdown, state) while a scene is fitted.

    ``state`` is what the orbit slider needs: {"ply": path, "cameras": [V, 4, 4] or None}.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if source == UPLOAD:
            if not upload:
                yield "Upload a scene zip (transforms.json or COLMAP + images) or a .ply file first.", None, "", None
                return
            if upload.lower().endswith(".ply"):
                model = api.load_ply(upload)
                state = {"ply": upload, "cameras": None}
                yield f"Loaded **{Path(upload).name}**: {len(model)} Gaussians, SH degree {model.max_sh_degree}.", _frame(model, 0.0, None), "", state
                return
            data = unpack_scene(upload, workdir)
        else:
            data = api.bundled_scene(workdir / "bundled_scene")
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        yield f"**Error**: {err}", None, "", None
        return

    iterations = int(iterations)
    cameras = api.scene_cameras_of(data)
    updates: queue.Queue = queue.Queue()

    def on_step(runner, outputs) -> None:
        model = runner.model
        updates.put(("step", model.step, float(outputs["loss"]), len(model.gaussians), _frame(model.gaussians, 30.0, cameras)))

    out_dir = workdir / f"fit_{data.name}_{iterations}"
    box: dict = {}

    def work() -> None:
        try:
            box["result"] = api.fit_scene(data, out_dir, iterations, orbit_frames=0, progress=False, callback=on_step, callback_every=PREVIEW_EVERY)
        except Exception as err:  # shown in the tab, not lost in a thread
            box["error"] = err
        finally:
            updates.put(("done",))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    preview = None
    while True:
        item = updates.get()
        if item[0] == "done":
            break
        _, step, loss, count, preview = item
        if progress is not None:
            progress((step, iterations), desc="fitting Gaussians")
        yield f"step {step}/{iterations} · loss {loss:.4f} · {count} Gaussians", preview, "", None
    thread.join()
    if "error" in box:
        yield f"**Error**: {box['error']}", preview, "", None
        return
    metrics = box["result"].metrics
    table = "| metric | value |\n|---|---|\n" + "\n".join(
        f"| {k} | {metrics[k]:.4f} |" if isinstance(metrics[k], float) else f"| {k} | {metrics[k]} |" for k in ("psnr", "ssim", "n_gaussians", "size_mb", "train_seconds", "render_fps")
    )
    state = {"ply": str(out_dir / "point_cloud.ply"), "cameras": cameras}
    yield f"done: {iterations} steps · results in `{out_dir}`", preview, table, state


_PLY_CACHE: dict[str, object] = {}


def orbit_view(state: dict | None, angle: float) -> np.ndarray | None:
    """The fitted (or loaded) scene seen from ``angle`` degrees around its orbit."""
    if not state:
        return None
    path = state["ply"]
    if path not in _PLY_CACHE:
        _PLY_CACHE.clear()
        _PLY_CACHE[path] = api.load_ply(path)
    return _frame(_PLY_CACHE[path], angle, state["cameras"])


def build(workdir: Path) -> None:
    import gradio as gr

    gr.Markdown(
        "Fit 3D Gaussians to posed images (the 3DGS recipe on mnemovision's rasterizer, under mmengine), "
        "then orbit the result. The bundled scene is generated on first use (about 10 s); 300 steps take "
        "about 2 minutes on 2 CPU cores."
    )
    state = gr.State(None)
    with gr.Row():
        with gr.Column():
            source = gr.Radio([BUNDLED, UPLOAD], value=BUNDLED, label="Scene", elem_id="splat-source")
            upload = gr.File(label="Scene zip or PLY", file_types=[".zip", ".ply"], type="filepath", elem_id="splat-upload")
            iterations = gr.Slider(10, 3000, value=300, step=10, label="Training steps", elem_id="splat-iterations")
            button = gr.Button("Train", variant="primary", elem_id="splat-train")
            status = gr.Markdown(elem_id="splat-status")
            metrics = gr.Markdown(elem_id="splat-metrics")
        with gr.Column():
            preview = gr.Image(label="Preview (live while training)", type="numpy", elem_id="splat-preview")
            angle = gr.Slider(0, 360, value=0, step=5, label="Orbit angle (degrees)", elem_id="splat-orbit")
            view = gr.Image(label="Orbit view", type="numpy", elem_id="splat-orbit-view")

    def run(src, up, steps, progress=gr.Progress()):
        yield from train(src, up, steps, workdir, progress)

    button.click(run, inputs=[source, upload, iterations], outputs=[status, preview, metrics, state]).then(
        orbit_view, inputs=[state, angle], outputs=[view]
    )
    angle.change(orbit_view, inputs=[state, angle], outputs=[view])
