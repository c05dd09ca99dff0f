"""mmengine Runner with weights-only resume, strict loading and atomic checkpoint writes.

mmengine 0.10.x calls ``torch.load`` without ``weights_only``; since torch 2.6 that defaults to True
and refuses mmengine's ``HistoryBuffer`` and the numpy arrays inside it, so resuming fails. Rather
than turning weights-only loading off, ``MnemoRunner`` allows exactly the classes an mmengine
checkpoint holds, for the duration of each load (``torch.serialization.safe_globals``).
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner import Runner


def _history_buffer_getattr(obj: object, name: str):
    """Stand-in for ``getattr`` while unpickling: HistoryBuffer pickles its statistics methods as
    ``getattr(HistoryBuffer, "mean")``; only that lookup is allowed, so the ``getattr`` gadget is not."""
    if obj is HistoryBuffer and name in {"min", "max", "mean", "current", *HistoryBuffer._statistics_methods}:
        return getattr(HistoryBuffer, name)
    raise ValueError(f"checkpoint asks for getattr({obj!r}, {name!r}); only HistoryBuffer statistics methods are allowed")


def checkpoint_safe_globals() -> list:
    """Classes and functions an mmengine checkpoint needs beyond plain tensors and containers.

    Everything is allowed by name; the builtin ``getattr`` that HistoryBuffer's pickle uses maps to
    a restricted stand-in (``_history_buffer_getattr``).
    """
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    dtype_classes = [type(np.dtype(name)) for name in ("float64", "float32", "int64", "int32", "uint8", "bool")]
    return [
        HistoryBuffer,
        (_history_buffer_getattr, "__builtin__.getattr"),
        (_history_buffer_getattr, "builtins.getattr"),
        np.ndarray,
        np.dtype,
        multiarray._reconstruct,
        multiarray.scalar,
        *dtype_classes,
    ]


@contextlib.contextmanager
def allow_mmengine_checkpoints() -> Iterator[None]:
    """Within this block, ``torch.load(weights_only=True)`` accepts mmengine checkpoint objects."""
    if hasattr(torch.serialization, "safe_globals"):
        with torch.serialization.safe_globals(checkpoint_safe_globals()):
            yield
    else:  # torch < 2.5 loads with weights_only=False by default; nothing to allow
        yield


def _raised_by_torch_load(err: BaseException) -> bool:
    """Whether ``err`` came from inside ``torch.load`` (the file could not be read), not from the
    code that used what it loaded (a state dict that does not fit the model)."""
    return any(Path(frame.filename).parts[-2:] == ("torch", "serialization.py") for frame in traceback.extract_tb(err.__traceback__))


@contextlib.contextmanager
def _naming(filename: str) -> Iterator[None]:
    """Errors that ``torch.load`` raises for a file it cannot read (a truncated zip, an empty file,
    bytes that are no pickle, a global that weights-only loading refuses) become a CheckpointError
    that names the file; other errors pass unchanged, among them the file system's (OSError: a
    permission refused, a failing disk), whose messages name the file and are no damage to it."""
    from mnemovision.vision.errors import CheckpointError

    try:
        yield
    except Exception as err:
        if isinstance(err, OSError) or not _raised_by_torch_load(err):
            raise
        lines = str(err).splitlines()
        reason = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
        raise CheckpointError(f"{filename}: a damaged checkpoint, cannot be loaded ({reason})") from err


class MnemoRunner(Runner):
    """``mmengine.runner.Runner`` that resumes under weights-only loading, loads strictly by default,
    writes checkpoints atomically (temporary file, then rename), and runs distributed on CPUs too
    (``torchrun`` with the gloo backend: mmengine 0.10 otherwise calls ``torch.cuda.set_device``)."""

    def setup_env(self, env_cfg: dict) -> None:
        import torch.distributed as dist

        if self.distributed and not torch.cuda.is_available() and not dist.is_initialized():
            backend = env_cfg.get("dist_cfg", {}).get("backend", "gloo")
            if backend != "gloo":
                raise ValueError(f"env_cfg.dist_cfg.backend={backend!r} needs CUDA; on CPU use 'gloo'")
            dist.init_process_group(backend="gloo")
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg, model):
        if self.distributed and not torch.cuda.is_available() and model_wrapper_cfg is None:
            from mmengine.model import MMDistributedDataParallel

            return MMDistributedDataParallel(
                module=model.to("cpu"),
                device_ids=None,
                find_unused_parameters=self.cfg.get("find_unused_parameters", False),
            )
        return super().wrap_model(model_wrapper_cfg, model)

    def build_train_loop(self, loop):
        """mmengine's loop, refused when its dataloader yields no batch: an iteration-based loop
        would otherwise restart the empty dataloader forever, waiting for its first batch."""
        built = super().build_train_loop(loop)
        dataloader = getattr(built, "dataloader", None)
        try:
            batches = len(dataloader)
        except TypeError:  # no dataloader, or a sampler without a length (an infinite one)
            return built
        if batches == 0:
            dataset = dataloader.dataset
            raise ValueError(f"the training data gives no batch: {type(dataset).__name__} holds {len(dataset)} samples for batches of {dataloader.batch_size}")
        return built

    def load_checkpoint(self, filename: str, map_location="cpu", strict: bool = True, revise_keys=((r"^module\.", ""),)):
        with allow_mmengine_checkpoints(), _naming(filename):
            return super().load_checkpoint(filename, map_location=map_location, strict=strict, revise_keys=list(revise_keys))

    def resume(self, filename: str, resume_optimizer: bool = True, resume_param_scheduler: bool = True, map_location="default") -> None:
        with allow_mmengine_checkpoints(), _naming(filename):
            super().resume(filename, resume_optimizer, resume_param_scheduler, map_location)

    def save_checkpoint(self, out_dir: str, filename: str, *args, **kwargs) -> None:
        from mmengine.dist import is_main_process

        partial = f".{filename}.partial"
        super().save_checkpoint(out_dir, partial, *args, **kwargs)  # writes on the main process only
        if not is_main_process():
            return
        tmp_path, final_path = Path(out_dir) / partial, Path(out_dir) / filename
        with open(tmp_path, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, final_path)


def config_type(cls: type):
    """``cls`` as a config ``type`` value that a loaded Python config can hold and print (a lazy
    reference to it); for entries added to a loaded config in code, e.g. a hook."""
    from mmengine.config.lazy import LazyObject

    return LazyObject(cls.__module__, cls.__qualname__)


def load_config(config: str | os.PathLike, cfg_options: dict | None = None) -> Config:
    """Read a Python config file (or the name of a bundled config, e.g. ``denoise_tiny``)."""
    path = resolve_config(config)
    cfg = Config.fromfile(str(path))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def resolve_config(config: str | os.PathLike) -> Path:
    """A config path as given, or a bundled config looked up by name in ``mnemovision/*/configs``."""
    path = Path(config)
    if path.exists():
        return path
    package_root = Path(__file__).resolve().parent.parent
    name = path.name if path.suffix == ".py" else f"{path.name}.py"
    matches = sorted(package_root.glob(f"**/configs/{name}"))
    if not matches:
        bundled = sorted(p.stem for p in package_root.glob("**/configs/*.py") if p.stem != "__init__")
        raise FileNotFoundError(f"{config}: no such config file, and no bundled config of that name (bundled: {', '.join(bundled)})")
    return matches[0]


def build_runner(
    config: str | os.PathLike | Config,
    work_dir: str | os.PathLike | None = None,
    resume: bool | str = False,
    cfg_options: dict | None = None,
    launcher: str = "none",
) -> MnemoRunner:
    """Build a ``MnemoRunner`` from a config file (or an already loaded ``Config``).

    Args:
        work_dir: overrides the config's; default ``work_dirs/<config name>``.
        resume: True resumes from the latest checkpoint in ``work_dir``; a path resumes from it.
        cfg_options: dotted-key overrides (``{"train_cfg.max_iters": 10}``).
        launcher: ``none`` or ``pytorch`` (set by ``torchrun``).
    """
    if isinstance(config, Config):
        cfg = config.copy()
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        default_name = Path(cfg.filename or "run").stem
    else:
        cfg = load_config(config, cfg_options)
        default_name = resolve_config(config).stem
    cfg.launcher = launcher
    if cfg.get("experiment_name") is None:  # mmengine names its logger per run; two runs in one second would clash
        import time
        import uuid

        cfg.experiment_name = f"{default_name}_{time.strftime('%Y%m%d_%H%M%S')}_{uuid.uuid4().hex[:6]}"
    if work_dir is not None:
        cfg.work_dir = str(work_dir)
    elif cfg.get("work_dir") is None:
        cfg.work_dir = str(Path("work_dirs") / default_name)
    if isinstance(resume, str) and resume:
        cfg.resume, cfg.load_from = True, resume
    else:
        cfg.resume = bool(resume)
    return MnemoRunner.from_cfg(cfg)


def parse_cfg_options(items: Sequence[str] | None) -> dict:
    """``["a.b=1", "c=x"]`` -> ``{"a.b": 1, "c": "x"}`` with mmengine's value parsing."""
    if not items:
        return {}
    import argparse

    malformed = [item for item in items if "=" not in item or item.startswith("=")]
    if malformed:
        raise ValueError(f"cfg options must be KEY=VALUE (e.g. train_cfg.max_iters=10), got {malformed}")
    namespace = argparse.Namespace()
    DictAction(option_strings=["--cfg-options"], dest="cfg_options")(None, namespace, list(items))
    return dict(namespace.cfg_options)
