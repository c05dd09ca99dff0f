"""The demo hub's app and launch settings, without a browser or a server: every tab is built, and the
hub serves on this machine only, with nothing fetched from the network (the browser tests drive the
tabs themselves)."""

import importlib
import shutil

import gradio as gr

from mnemovision.demos import hub


def test_the_hub_builds_one_tab_per_area_under_its_workdir(tmp_path, monkeypatch):
    given = {}
    for name in hub.TABS:  # each tab's build is handed its own folder under the hub's workdir
        module = importlib.import_module(name)
        monkeypatch.setattr(module, "build", lambda workdir, build=module.build, name=name: (given.setdefault(name, workdir), build(workdir)))
    app = hub.build_app(tmp_path / "work")
    assert given == {name: tmp_path / "work" / name.rsplit(".", 1)[-1] for name in hub.TABS}
    assert app.workdir == tmp_path / "work" and app.workdir.is_dir()
    tabs = [block for block in app.blocks.values() if isinstance(block, gr.Tab)]
    top = {tab.id: tab.label for tab in tabs if tab.id in {"splat_tab", "vos_tab", "sr_tab", "metrics_tab"}}
    assert top == {"splat_tab": "Gaussian splatting", "vos_tab": "Video segmentation", "sr_tab": "Super-resolution", "metrics_tab": "Metrics"}


def test_the_hub_serves_locally_with_system_fonts_and_its_workdir_only(tmp_path, monkeypatch):
    launched = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **options: launched.update(options))
    app = hub.serve(block=False, workdir=tmp_path)
    assert launched["server_name"] == "127.0.0.1" and launched["server_port"] == 7860 and launched["share"] is False
    assert launched["allowed_paths"] == [str(tmp_path)] and launched["prevent_thread_lock"] is True
    theme = launched["theme"]  # system font names only: a web font would be fetched, a bundled one is not the system's
    assert all(isinstance(font, str) for font in (*theme._font, *theme._font_mono))
    assert app.workdir == tmp_path


def test_without_a_workdir_the_hub_uses_a_temporary_one(monkeypatch):
    removed = []
    monkeypatch.setattr(hub.atexit, "register", lambda fn, path, **kw: removed.append(path))
    app = hub.build_app()
    assert app.workdir.is_dir() and app.workdir.name.startswith("mnemovision-demo-")
    assert removed == [str(app.workdir)]  # removed when the process exits
    shutil.rmtree(app.workdir)
