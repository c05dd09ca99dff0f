"""The command line in-process: the arguments of each command reach the library as given (recording
stand-ins for training and scene fitting, whose own tests run them end to end), the light commands
(bicubic SR, copy-first VOS, J&F) run for real, and bad input ends in one line with status 2."""

import importlib.metadata
import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

import mnemovision.engine
import mnemovision.kernels
import mnemovision.splatting.data.synthetic
import mnemovision.splatting.engine
import mnemovision.splatting.gaussians
import mnemovision.splatting.render
import mnemovision.sr.api
import mnemovision.vos.api
from mnemovision import cli
from mnemovision.cli import main
from mnemovision.sr.api import load_upscaler
from mnemovision.vision.io import read_image, read_mask, write_image, write_mask
from tests.vos.test_run import H, T, W, _box, write_video_folders


class Calls:
    """A stand-in that records each call's arguments and returns ``result``."""

    def __init__(self, result=None):
        self.calls, self.result = [], result

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.result


@pytest.fixture
def finishes(monkeypatch):
    """Records how the CLI tears the process group down (its ``synchronize`` flag)."""
    seen = []
    monkeypatch.setattr(cli, "_finish_distributed", lambda synchronize=True: seen.append(synchronize))
    return seen


class FakeRunner:
    def __init__(self, fail=False, metrics=None):
        self.fail, self.metrics, self.trained = fail, metrics, 0

    def train(self):
        self.trained += 1
        if self.fail:
            raise RuntimeError("diverged")

    def test(self):
        return self.metrics


@pytest.mark.parametrize("extra, resume", [([], False), (["--resume"], True), (["--resume", "w/iter_30.pth"], "w/iter_30.pth")])
def test_train_passes_config_work_dir_resume_options_and_launcher(monkeypatch, finishes, extra, resume):
    runner = FakeRunner()
    build = Calls(runner)
    monkeypatch.setattr(mnemovision.engine, "build_runner", build)
    assert main(["train", "cfg.py", *extra]) == 0
    assert build.calls == [(("cfg.py", None, resume, {}, "none"), {})]
    assert runner.trained == 1 and finishes == [True]
    build.calls.clear()
    args = ["train", "denoise_tiny", "--work-dir", "w", "--cfg-options", "train_cfg.max_iters=7", "log_level=ERROR", "--launcher", "pytorch"]
    assert main(args) == 0
    assert build.calls == [(("denoise_tiny", "w", False, {"train_cfg.max_iters": 7, "log_level": "ERROR"}, "pytorch"), {})]


def test_a_failed_run_tears_down_without_the_barrier_and_raises(monkeypatch, finishes):
    monkeypatch.setattr(mnemovision.engine, "build_runner", Calls(FakeRunner(fail=True)))
    with pytest.raises(RuntimeError, match="diverged"):  # not an input error: the traceback is kept
        main(["train", "cfg.py"])
    assert finishes == [False]  # the other ranks may be gone; a barrier would hang


def test_test_loads_the_checkpoint_without_resuming_and_prints_the_metrics(monkeypatch, finishes, capsys):
    import torch

    build = Calls(FakeRunner(metrics={"denoise/psnr": np.float64(31.25), "steps": 3, "note": torch.tensor(1.5)}))
    monkeypatch.setattr(mnemovision.engine, "build_runner", build)
    assert main(["test", "cfg.py", "w/iter_30.pth", "--cfg-options", "log_level=ERROR"]) == 0
    assert build.calls == [(("cfg.py", None, False, {"log_level": "ERROR", "load_from": "w/iter_30.pth"}, "none"), {})]
    assert json.loads(capsys.readouterr().out) == {"denoise/psnr": 31.25, "steps": 3.0, "note": "tensor(1.5000)"}
    assert finishes == [True]


def test_make_scene_passes_views_size_and_seed(monkeypatch, capsys, tmp_path):
    make = Calls(tmp_path / "scene" / "transforms.json")
    monkeypatch.setattr(mnemovision.splatting.data.synthetic, "make_scene", make)
    assert main(["data", "make-scene", str(tmp_path / "scene"), "--views", "12", "--size", "32", "--seed", "3"]) == 0
    (out, spec), kwargs = make.calls[0]
    assert kwargs == {} and out == str(tmp_path / "scene") and (spec.n_views, spec.size, spec.seed) == (12, 32, 3)
    assert main(["data", "make-scene", "x"]) == 0
    spec = make.calls[1][0][1]
    assert (spec.n_views, spec.size, spec.seed) == (50, 128, 0)
    assert capsys.readouterr().out.splitlines()[0] == str(tmp_path / "scene" / "transforms.json")


@pytest.mark.parametrize("extra, resume", [([], False), (["--resume"], True), (["--resume", "f/iter_5.pth"], "f/iter_5.pth")])
def test_splat_fit_passes_its_options_and_prints_the_metrics(monkeypatch, capsys, extra, resume):
    fit = Calls(SimpleNamespace(metrics={"psnr": 24.5, "iterations": 20}))
    monkeypatch.setattr(mnemovision.splatting.engine, "fit_scene", fit)
    assert main(["splat", "fit", "scene", "--out", "f", *extra]) == 0
    assert fit.calls == [(("scene", "f", 1000, 1.0), {"fit": {}, "orbit_frames": 60, "resume": resume})]
    assert json.loads(capsys.readouterr().out) == {"psnr": 24.5, "iterations": 20}
    fit.calls.clear()
    args = ["splat", "fit", "scene", "--out", "f", "--iterations", "20", "--downscale", "2", "--orbit-frames", "0", "--lpips-weights", "alex.pth"]
    assert main(args) == 0
    assert fit.calls == [(("scene", "f", 20, 2.0), {"fit": {"lpips_weights": "alex.pth", "lpips_backbone": None}, "orbit_frames": 0, "resume": False})]


def test_splat_render_passes_frames_and_width_by_height(monkeypatch, capsys):
    load, render = Calls("the model"), Calls("o.mp4")
    monkeypatch.setattr(mnemovision.splatting.gaussians, "load_ply", load)
    monkeypatch.setattr(mnemovision.splatting.render, "render_orbit_video", render)
    assert main(["splat", "render", "--ply", "p.ply", "--orbit", "--out", "o.mp4", "--frames", "4", "--width", "48", "--height", "32"]) == 0
    assert load.calls == [(("p.ply",), {})]
    assert render.calls == [(("the model", "o.mp4"), {"n_frames": 4, "size": (48, 32)})]
    assert capsys.readouterr().out == "o.mp4\n"


def test_sr_upscale_writes_one_png_per_image_of_a_folder_and_one_file_for_a_file(tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(0)
    images = {"a.png": rng.integers(0, 256, (9, 11, 3), dtype=np.uint8), "b.PNG": rng.integers(0, 256, (6, 5), dtype=np.uint8)}
    for name, image in images.items():
        write_image(tmp_path / "in" / name, image)
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    assert main(["sr", "upscale", str(tmp_path / "in"), str(tmp_path / "out"), "--model", "bicubic", "--scale", "2"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
    bicubic = load_upscaler("bicubic", 2)
    for name, image in images.items():
        assert np.array_equal(read_image(tmp_path / "out" / f"{name[0]}.png"), bicubic(image))
    assert capsys.readouterr().out.splitlines() == [str(tmp_path / "out" / "a.png"), str(tmp_path / "out" / "b.png")]
    assert main(["sr", "upscale", str(tmp_path / "in" / "a.png"), str(tmp_path / "one.png"), "--model", "bicubic", "--scale", "3"]) == 0
    assert read_image(tmp_path / "one.png").shape == (27, 33, 3)
    loads = Calls(bicubic)
    monkeypatch.setattr(mnemovision.sr.api, "load_upscaler", loads)
    for extra, sparse in (([], False), (["--sparse"], True)):
        assert main(["sr", "upscale", str(tmp_path / "in" / "a.png"), str(tmp_path / "s.png"), "--model", "m.safetensors", *extra]) == 0
        assert loads.calls[-1] == (("m.safetensors", None), {"sparse": sparse})
    monkeypatch.undo()
    (tmp_path / "empty").mkdir()
    assert main(["sr", "upscale", str(tmp_path / "empty"), str(tmp_path / "o"), "--model", "bicubic", "--scale", "2"]) == 2
    assert capsys.readouterr().err == f"mnemovision: error: {tmp_path / 'empty'}: no image files\n"


def test_sr_eval_writes_the_full_report_and_prints_the_summary(tmp_path, capsys):
    rng = np.random.default_rng(1)
    for name in ("x.png", "y.png"):
        write_image(tmp_path / "HR" / name, rng.integers(0, 256, (24, 20, 3), dtype=np.uint8))
    assert main(["sr", "eval", "--model", "bicubic", "--data", str(tmp_path), "--scale", "2", "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    printed = json.loads(capsys.readouterr().out)
    assert set(report["per_image"]) == {"x.png", "y.png"} and report["scale"] == 2
    assert printed == {k: report[k] for k in ("model", "scale", "psnr_y", "ssim_y")}


def test_vos_run_segments_every_sequence_and_passes_adapt_steps_only_when_given(tmp_path, monkeypatch, capsys):
    for name in ("b", "a"):
        write_video_folders(tmp_path, name)
    args = ["vos", "run", "--frames", str(tmp_path / "frames"), "--masks", str(tmp_path / "masks"), "--out", str(tmp_path / "out"), "--model", "copy-first"]
    assert main(args) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("segmenting sequences")]  # the bar's last state
    assert printed == [str(tmp_path / "out" / "a"), str(tmp_path / "out" / "b")]
    for name in ("a", "b"):
        written = sorted((tmp_path / "out" / name).glob("*.png"))
        assert len(written) == T and read_mask(written[0]).shape == (H, W) and (tmp_path / "out" / f"{name}.mp4").exists()
    real = mnemovision.vos.api.load_model
    load = Calls()
    monkeypatch.setattr(mnemovision.vos.api, "load_model", lambda name, **options: load(name, **options) or real("copy-first"))
    for extra, options in (([], {}), (["--adapt-steps", "0"], {"adapt_steps": 0}), (["--adapt-steps", "5"], {"adapt_steps": 5})):
        assert main([*args[:-2], "--model", "jointformer", *extra]) == 0
        assert load.calls[-1] == (("jointformer",), options)
    monkeypatch.setattr(mnemovision.vos.api, "load_model", real)
    capsys.readouterr()
    assert main([*args[:-2], "--model", "flow", "--adapt-steps", "3"]) == 2  # flow takes no adaptation
    assert capsys.readouterr().err.startswith("mnemovision: error: --adapt-steps applies to JointFormer models: VOS model 'flow' does not take")


def _gt_folders(root):
    """``root/gt/<seq>/`` with every frame annotated, for ``write_video_folders``' video annotated at
    frame 0 only: in ``right`` object 1 stays where frame 0 has it (what copy-first predicts), in
    ``moved`` it moves at frame 2."""
    still = _box(np.zeros((H, W), np.uint8), 1, 4, 12, 4, 20)
    moved = _box(np.zeros((H, W), np.uint8), 1, 16, 28, 30, 44)
    for seq, later in (("right", still), ("moved", moved)):
        for t in range(T):
            write_mask(root / "gt" / seq / f"{t:05d}.png", still if t < 2 else later)


def test_vos_eval_scores_the_chosen_sequences_into_csvs_and_json(tmp_path, capsys):
    for seq in ("right", "moved"):
        write_video_folders(tmp_path, seq, annotated=(0,))
    _gt_folders(tmp_path)
    main(["vos", "run", "--frames", str(tmp_path / "frames"), "--masks", str(tmp_path / "masks"), "--out", str(tmp_path / "pred"), "--model", "copy-first"])
    capsys.readouterr()
    assert main(["vos", "eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--sequences", "right", "--json", str(tmp_path / "r.json")]) == 0
    assert json.loads(capsys.readouterr().out) == {"JF": 1.0, "J": 1.0, "F": 1.0}
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report) == {"J", "F", "JF", "J_recall", "J_decay", "F_recall", "F_decay", "per_sequence", "per_object"}
    assert set(report["per_sequence"]) == {"right"}
    assert (tmp_path / "pred" / "global_results.csv").exists()  # the CSVs go beside the predictions by default
    assert main(["vos", "eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--csv", str(tmp_path / "csv")]) == 0
    both = json.loads(capsys.readouterr().out)
    # DAVIS scores frames 1..T-2: in "moved" copy-first is right on frame 1 only (J = F = 1/3), in
    # "right" on all; the mean 2/3 is printed to 4 places.
    assert both == {"JF": 0.6667, "J": 0.6667, "F": 0.6667}
    assert (tmp_path / "csv" / "per-sequence_results.csv").read_text().count("\n") == 1 + 2  # a header and one object a sequence


def test_info_reports_what_is_usable_as_json_and_as_a_table(monkeypatch, capsys):
    report = {"torch": "2.x", "cuda": False, "cuda_devices": [], "triton": "3.x", "triton_interpreter": True, "gsplat": None}
    monkeypatch.setattr(mnemovision.kernels, "backend_report", lambda: dict(report))
    assert main(["info", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["backends"] == {"torch": True, "triton": False, "triton_interpreter": True, "gsplat": False}  # triton runs kernels only on CUDA
    assert printed["numpy"] == np.__version__ and printed["mnemovision"] == mnemovision.__version__
    monkeypatch.setattr(mnemovision.kernels, "backend_report", lambda: {**report, "cuda": True, "gsplat": "1.5.3"})
    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["backends"] == {"torch": True, "triton": True, "triton_interpreter": True, "gsplat": True}
    monkeypatch.setattr(mnemovision.kernels, "backend_report", lambda: {**report, "triton": None})
    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["backends"] == {"torch": True, "triton": False, "triton_interpreter": False, "gsplat": False}
    monkeypatch.setattr(mnemovision.kernels, "backend_report", lambda: {**report, "cuda": True, "gsplat": "1.5.3"})
    assert main(["info"]) == 0
    table = capsys.readouterr().out
    assert "backend: triton" in table and "usable" in table and "gsplat" in table and "1.5.3" in table
    monkeypatch.setattr(mnemovision.kernels, "backend_report", lambda: dict(report))  # no CUDA, no gsplat
    assert main(["info"]) == 0
    cells = [re.split(r"[│┃|]", line) for line in capsys.readouterr().out.splitlines()]  # rich draws ASCII bars without UTF-8
    rows = {c[1].strip(): c[2].strip() for c in cells if len(c) == 4}
    assert rows["backend: gsplat"] == "not usable" and rows["backend: triton"] == "not usable" and rows["backend: torch"] == "usable"
    assert rows["cuda_devices"] == "-" and rows["gsplat"] == "-"  # nothing there: a dash, not None or []


def test_versions_come_from_the_distributions_that_ship_the_modules():
    import cv2

    assert cli._version_of("cv2") == importlib.metadata.version("opencv-python-headless")
    assert cv2.__version__.split(".")[:2] == cli._version_of("cv2").split(".")[:2]
    assert cli._version_of("numpy") == np.__version__
    assert cli._version_of("no_module_of_this_name") is None


def test_a_module_without_package_metadata_is_reported_as_installed(tmp_path, monkeypatch):
    (tmp_path / "loose_module_here").mkdir()
    (tmp_path / "loose_module_here" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli._version_of("loose_module_here") == "installed"


def test_input_errors_are_one_line_with_status_2_and_a_traceback_on_request(tmp_path, monkeypatch, capsys):
    args = ["sr", "eval", "--model", "bicubic", "--data", str(tmp_path / "nothing"), "--scale", "2"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("mnemovision: error: ") and "nothing: no image files" in err and err.count("\n") == 1
    monkeypatch.setenv("MNEMOVISION_DEBUG", "1")
    with pytest.raises(FileNotFoundError, match="nothing: no image files"):
        main(args)
