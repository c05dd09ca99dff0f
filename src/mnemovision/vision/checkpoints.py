"""Checkpoints: atomic writes, safetensors, weights-only ``.pth`` loading, strict state-dict loading.

Nothing here unpickles arbitrary objects: ``.pth``/``.pt`` files go through
``torch.load(weights_only=True)``; ``.safetensors`` through safetensors.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

from mnemovision.vision.errors import CheckpointError


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    If the block raises, the temporary file is removed and ``path`` is left untouched, so a crash
    never leaves a half-written file under the final name. The file gets the permissions a plain
    ``open`` would give it (0666 minus the umask), not the temporary file's private 0600.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_safetensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> None:
    """Write ``tensors`` to ``path`` as safetensors, atomically.

    Tensors are made contiguous and moved to CPU; tensors that share memory are cloned (safetensors
    refuses shared storage).
    """
    from safetensors.torch import save

    clean = {}
    for key, value in tensors.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"save_safetensors: {key!r} is a {type(value).__name__}, expected a torch.Tensor")
        clean[key] = value.detach().to("cpu").contiguous().clone()
    payload = save(clean, metadata=dict(metadata) if metadata else None)
    with atomic_write(path, "wb") as handle:
        handle.write(payload)


def load_safetensors(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a safetensors file; a missing or corrupt file raises an error that names it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from err


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata stored in a safetensors header (empty when there is none)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})


def save_torch(path: str | os.PathLike, obj: object) -> None:
    """``torch.save`` to ``path`` atomically. Save only tensors and plain containers, so that the
    file loads with ``weights_only=True``."""
    with atomic_write(path, "wb") as handle:
        torch.save(obj, handle)


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict:
    """Load a checkpoint file by its suffix: ``.safetensors`` or ``.pth``/``.pt``/``.ckpt``/``.bin``
    (the latter with ``torch.load(weights_only=True)``: no arbitrary unpickling).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is corrupt, truncated, or holds objects that weights-only
            loading refuses; the message names the file.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_safetensors(path, device)
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for bad files
        raise CheckpointError(f"{path}: cannot be loaded with torch.load(weights_only=True): {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from err
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    return obj


def load_state_dict_strict(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
    """Load ``state_dict`` into ``module``, failing loudly on any mismatch.

    Raises:
        CheckpointError: naming every missing key, every unexpected key and every shape mismatch,
            and ``source`` (usually the checkpoint's path).
    """
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state_dict))
        if tuple(own[k].shape) != tuple(state_dict[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}{' ...' if len(unexpected) > 20 else ''}")
        if shapes:
            parts.append(f"shape mismatches ({len(shapes)}): {'; '.join(shapes[:20])}")
        raise CheckpointError(f"{source}: does not match {type(module).__name__}: " + " | ".join(parts))
    module.load_state_dict(dict(state_dict), strict=True)
