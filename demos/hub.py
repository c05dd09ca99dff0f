"""The demo hub: one Gradio app, one tab per area, served on 127.0.0.1 (never ``share=True``).

A tab is a module with ``TITLE`` and ``build(workdir)``; ``build`` is called inside a ``gr.Tab`` and
creates the tab's components and events. Add a tab by appending its module name to ``TABS``.
"""

from __future__ import annotations

import atexit
import importlib
import os
import shutil
import tempfile
from pathlib import Path

TABS: list[str] = ["mnemovision.demos.splat_tab", "mnemovision.demos.vos_tab", "mnemovision.demos.sr_tab", "mnemovision.demos.metrics_tab"]


def _offline_theme():
    import gradio as gr

    # System fonts: the default theme would fetch web fonts, and the hub must work with no network.
    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"],
        font_mono=["ui-monospace", "monospace"],
    )


def build_app(workdir: str | os.PathLike | None = None):
    """Build the hub's ``gr.Blocks``; outputs of the tabs go under ``workdir`` (by default a temp dir,
    removed when the process exits)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    import mnemovision

    if workdir is None:
        workdir = tempfile.mkdtemp(prefix="mnemovision-demo-")
        atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with gr.Blocks(title="mnemovision") as app:
        gr.Markdown(f"# mnemovision {mnemovision.__version__}\nVision and 3D perception built around memory.")
        with gr.Tabs():
            for module_name in TABS:
                module = importlib.import_module(module_name)
                with gr.Tab(module.TITLE, id=module_name.rsplit(".", 1)[-1]):
                    module.build(workdir / module_name.rsplit(".", 1)[-1])
    app.workdir = workdir
    return app


def serve(host: str = "127.0.0.1", port: int = 7860, open_browser: bool = False, block: bool = True, workdir: str | os.PathLike | None = None):
    """Launch the hub (outputs under ``workdir``, see ``build_app``); returns the app (with
    ``block=False`` the server runs in a background thread)."""
    app = build_app(workdir)
    app.queue()
    app.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=open_browser,
        prevent_thread_lock=not block,
        ssr_mode=False,
        theme=_offline_theme(),
        allowed_paths=[str(app.workdir)],
        quiet=not block,
    )
    return app
