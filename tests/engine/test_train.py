"""Training entry points on the bundled ``denoise_tiny`` recipe (real photo patches, seconds on CPU)."""

import io
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from mnemovision.engine import build_runner, parse_cfg_options, resolve_config
from mnemovision.engine.runner import _history_buffer_getattr

QUIET = {"log_level": "ERROR", "default_hooks.logger.interval": 1000}


def train(work_dir, max_iters, resume=False, **options):
    runner = build_runner("denoise_tiny", work_dir=work_dir, resume=resume, cfg_options={**QUIET, "train_cfg.max_iters": max_iters, **options})
    runner.train()
    return runner


def test_resume_matches_an_uninterrupted_run_exactly(tmp_path):
    full = train(tmp_path / "full", 60)
    train(tmp_path / "split", 30)
    assert (tmp_path / "split" / "iter_30.pth").exists()
    resumed = train(tmp_path / "split", 60, resume=True)
    assert resumed.iter == 60
    for key, value in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    full_opt, resumed_opt = full.optim_wrapper.state_dict()["state"], resumed.optim_wrapper.state_dict()["state"]
    for index in full_opt:
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(full_opt[index][name], resumed_opt[index][name])
    # Training did something real: the denoiser beats its noisy input on held-out photo patches.
    metrics = resumed.val_loop.run()
    assert metrics["denoise/psnr"] > metrics["denoise/psnr_noisy"] + 2.0


def test_checkpoints_are_written_atomically_and_load_weights_only(tmp_path):
    train(tmp_path, 30)
    names = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".pth" or "partial" in p.name)
    assert names == ["iter_30.pth"]  # no partial file left behind
    with pytest.raises(Exception, match="weights_only|Unsupported global"):
        torch.load(tmp_path / "iter_30.pth", weights_only=True)  # plain weights-only loading refuses mmengine's objects
    from mnemovision.engine import allow_mmengine_checkpoints

    with allow_mmengine_checkpoints():
        checkpoint = torch.load(tmp_path / "iter_30.pth", weights_only=True)
    assert checkpoint["meta"]["iter"] == 30


def test_the_getattr_stand_in_allows_only_history_buffer_statistics():
    from mmengine.logging.history_buffer import HistoryBuffer

    assert _history_buffer_getattr(HistoryBuffer, "mean") is HistoryBuffer.mean
    with pytest.raises(ValueError, match="only HistoryBuffer"):
        _history_buffer_getattr(os, "system")
    with pytest.raises(ValueError, match="only HistoryBuffer"):
        _history_buffer_getattr(np, "mean")  # an allowed name on another object
    with pytest.raises(ValueError, match="only HistoryBuffer"):
        _history_buffer_getattr(HistoryBuffer, "__init__")


@pytest.mark.timeout(120)  # before the check, this run waited for its first batch forever
def test_training_data_without_a_batch_is_refused(tmp_path):
    with pytest.raises(ValueError, match="the training data gives no batch: PatchDenoiseDataset holds 0 samples for batches of 8"):
        train(tmp_path, 5, **{"train_dataloader.dataset.length": 0})
    with pytest.raises(ValueError, match="holds 3 samples for batches of 8"):
        train(tmp_path, 5, **{"train_dataloader.dataset.length": 3, "train_dataloader.drop_last": True})


def test_resume_from_a_corrupt_checkpoint_names_it(tmp_path, monkeypatch):
    train(tmp_path, 30)
    ckpt = tmp_path / "iter_30.pth"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    from mnemovision.vision.errors import CheckpointError

    # before, torch's RuntimeError (a zip's central directory) reached the user without the file
    for resume in (str(ckpt), True):  # the path given, and the latest found in the work dir
        with pytest.raises(CheckpointError, match=r"iter_30.pth: a damaged checkpoint, cannot be loaded \(RuntimeError: PytorchStreamReader"):
            train(tmp_path, 60, resume=resume)
    # files that are no zip at all: torch reads them as legacy pickles and fails with EOFError
    # (empty, cut short) or KeyError / IndexError (other bytes), none of which named the file
    legacy = io.BytesIO()
    torch.save({"state_dict": {}}, legacy, _use_new_zipfile_serialization=False)
    for name, content, error in (("empty.pth", b"", "EOFError"), ("cut.pth", legacy.getvalue()[:50], "EOFError"), ("text.pth", b"hello, not a checkpoint", "KeyError")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match=rf"{name}: a damaged checkpoint, cannot be loaded \({error}"):
            train(tmp_path, 60, resume=str(tmp_path / name))
    # a pickle that would run code when loaded is refused by weights-only loading, and named
    marker = tmp_path / "ran"
    torch.save({"state_dict": {}, "meta": TouchOnLoad(str(marker))}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match=r"evil.pth: a damaged checkpoint, cannot be loaded \(UnpicklingError: Weights only load failed"):
        train(tmp_path, 60, resume=str(tmp_path / "evil.pth"))
    assert not marker.exists()
    # the file system's own errors inside torch.load (a permission refused on open: tests run as root,
    # so it is staged) are no damaged checkpoint: they pass as they are, naming the file themselves
    def refuse(name, mode):
        raise PermissionError(13, "Permission denied", str(name))

    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "_open_file", refuse)
        with pytest.raises(PermissionError, match=r"Permission denied: '.*text\.pth'"):
            train(tmp_path, 60, resume=str(tmp_path / "text.pth"))


class TouchOnLoad:
    """Unpickles as ``open(path, "w")``: a stand-in for code a hostile checkpoint would run."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_cfg_options_and_config_lookup():
    assert parse_cfg_options(["train_cfg.max_iters=7", "optim_wrapper.optimizer.lr=0.5", "model.channels=8"]) == {
        "train_cfg.max_iters": 7,
        "optim_wrapper.optimizer.lr": 0.5,
        "model.channels": 8,
    }
    with pytest.raises(ValueError, match=r"cfg options must be KEY=VALUE .*got \['foo', '=1'\]"):
        parse_cfg_options(["a=1", "foo", "=1"])  # mmengine's own: "not enough values to unpack"
    assert parse_cfg_options(None) == {} and parse_cfg_options([]) == {}
    assert resolve_config("denoise_tiny").name == "denoise_tiny.py"
    with pytest.raises(FileNotFoundError, match="bundled: .*denoise_tiny"):
        resolve_config("no_such_recipe")


def run_cli(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "mnemovision", *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


def test_cli_train_then_test(tmp_path):
    out = run_cli("train", "denoise_tiny", "--work-dir", str(tmp_path / "wd"), "--cfg-options", "train_cfg.max_iters=30", "log_level=ERROR", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    out = run_cli("test", "denoise_tiny", str(tmp_path / "wd" / "iter_30.pth"), "--work-dir", str(tmp_path / "wd"), "--cfg-options", "log_level=ERROR", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads(out.stdout[out.stdout.index("{") :])
    assert metrics["denoise/psnr"] > metrics["denoise/psnr_noisy"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_gloo_matches_one_process_with_the_global_batch(tmp_path):
    """2 CPU processes x batch 8 under DDP = 1 process x batch 16: same samples, averaged gradients."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        "-m", "mnemovision", "train", "denoise_tiny", "--launcher", "pytorch", "--work-dir", str(tmp_path / "ddp"),
        "--cfg-options", "train_cfg.max_iters=20", "train_cfg.val_interval=20", "default_hooks.checkpoint.interval=20", "log_level=ERROR",
    ]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "terminate called" not in out.stderr
    single = train(tmp_path / "single", 20, **{"train_dataloader.batch_size": 16, "train_cfg.val_interval": 20, "default_hooks.checkpoint.interval": 20})
    from mnemovision.engine import allow_mmengine_checkpoints

    with allow_mmengine_checkpoints():
        ddp_state = torch.load(tmp_path / "ddp" / "iter_20.pth", weights_only=True)["state_dict"]
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp_state[key], value, rtol=1e-4, atol=1e-5)


def test_load_checkpoint_is_strict_strips_ddp_prefixes_and_passes_state_errors_on(tmp_path):
    runner = build_runner("denoise_tiny", work_dir=tmp_path, cfg_options=QUIET)
    state = {key: torch.full_like(value, 0.5) for key, value in runner.model.state_dict().items()}
    torch.save({"state_dict": {f"module.{key}": value for key, value in state.items()}, "meta": {}}, tmp_path / "ddp.pth")
    runner.load_checkpoint(str(tmp_path / "ddp.pth"))  # a DistributedDataParallel checkpoint's keys
    for key, value in runner.model.state_dict().items():
        assert torch.equal(value, state[key]), key
    torch.save({"state_dict": {**state, "extra.weight": torch.zeros(1)}, "meta": {}}, tmp_path / "extra.pth")
    with pytest.raises(RuntimeError, match="unexpected key in source state_dict: extra.weight"):  # strict, and not "damaged"
        runner.load_checkpoint(str(tmp_path / "extra.pth"))


def test_build_runner_keeps_what_the_config_sets_and_takes_loaded_configs(tmp_path):
    from mnemovision.engine import load_config

    runner = build_runner("denoise_tiny", cfg_options={**QUIET, "work_dir": str(tmp_path / "set"), "experiment_name": "mine"})
    assert runner.work_dir == str(tmp_path / "set") and runner.experiment_name.startswith("mine_")  # mmengine adds the time
    config = load_config("denoise_tiny")
    loaded = build_runner(config, work_dir=tmp_path / "loaded", cfg_options={**QUIET, "train_cfg.max_iters": 3})
    assert loaded.cfg.train_cfg.max_iters == 3 and loaded.experiment_name.startswith("denoise_tiny_")
    assert config.train_cfg.max_iters == 60 and "experiment_name" not in config and "work_dir" not in config  # the caller's config is untouched
    again = build_runner(load_config("denoise_tiny"), work_dir=tmp_path / "loaded", cfg_options=QUIET)
    assert again.experiment_name != loaded.experiment_name  # unique per run, so their loggers do not clash
    assert resolve_config("denoise_tiny.py") == resolve_config("denoise_tiny")
    local = tmp_path / "denoise_tiny.py"
    local.write_text(resolve_config("denoise_tiny").read_text().replace("max_iters=60", "max_iters=5"))
    assert resolve_config(local) == local  # a file that exists wins over the bundled config of its name
    assert build_runner(local, work_dir=tmp_path / "local", cfg_options=QUIET).cfg.train_cfg.max_iters == 5


def test_resume_from_a_given_checkpoint_outside_the_work_dir(tmp_path):
    other = train(tmp_path / "other", 30, **{"randomness.seed": 1})
    resumed = train(tmp_path / "fresh", 30, resume=str(tmp_path / "other" / "iter_30.pth"))  # seed 0, nothing to train
    for key, value in other.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


def test_distributed_runs_on_cpu_take_gloo_and_refuse_other_backends(monkeypatch):
    from mnemovision.engine import MnemoRunner

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    runner = MnemoRunner.__new__(MnemoRunner)  # only setup_env's check, before any process group starts
    runner._distributed = True
    with pytest.raises(ValueError, match="env_cfg.dist_cfg.backend='nccl' needs CUDA; on CPU use 'gloo'"):
        runner.setup_env({"dist_cfg": {"backend": "nccl"}})
