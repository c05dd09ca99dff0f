"""Locating the shared real data (``../shared/data`` beside a checkout, or ``$MNEMOVISION_DATA``)."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "MNEMOVISION_DATA"


def shared_data_root(start: str | os.PathLike | None = None) -> Path | None:
    """The shared data folder, or None when there is none.

    ``$MNEMOVISION_DATA`` wins when set; otherwise ``shared/data`` is searched beside each parent of
    ``start`` (default: the current directory), which finds ``../shared/data`` from a checkout.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env)
        return path if path.is_dir() else None
    here = Path(start or Path.cwd()).resolve()
    for parent in (here, *here.parents):
        candidate = parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def shared_data_path(*parts: str, start: str | os.PathLike | None = None) -> Path | None:
    """``<shared data root>/<parts...>`` when it exists, else None."""
    root = shared_data_root(start)
    if root is None:
        return None
    path = root.joinpath(*parts)
    return path if path.exists() else None
