"""Shared fixtures and marker handling for the test suite.

Markers (declared in pyproject.toml, run with --strict-markers): ``gpu`` skips without CUDA,
``browser`` skips without Chromium and Playwright, ``data`` tests get their paths from the
``shared_data`` fixture, which skips with a reason when ../shared/data is absent.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def _use_triton_interpreter_without_cuda() -> None:
    """Triton reads TRITON_INTERPRET when @triton.jit decorates a kernel, so it is set here, before any
    test imports a kernel module: on a machine without CUDA the Triton tests run in the interpreter,
    on a GPU they run natively."""
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")


def _device_calls_without_repatching() -> None:
    """Under the interpreter, Triton patches ``triton.language`` for a kernel's launch (undone after
    it), and again, never undone, at every call of a ``@triton.jit`` device function: an
    ``inspect.getmembers`` walk over the language modules that finds nothing left to patch inside a
    launch, yet took half the interpreter's time in the rasterizer's kernels (helpers called per
    Gaussian). Here a device call inside a launch skips that walk when the launching kernel's
    globals already hold every language module the helper's do; the kernels run unchanged. On a
    Triton without these internals, nothing changes."""
    from mnemovision.kernels import triton_interpreter_enabled

    if importlib.util.find_spec("triton") is None or not triton_interpreter_enabled():
        return
    import triton.language as tl
    from triton.runtime import interpreter

    if not all(hasattr(interpreter, name) for name in ("GridExecutor", "InterpretedFunction", "_patch_lang", "_LangPatchScope")):
        return
    launch, device_call, patch_lang = interpreter.GridExecutor.__call__, interpreter.InterpretedFunction.__call__, interpreter._patch_lang
    launches: list[frozenset[int]] = []  # the language modules patched by each running launch

    @functools.cache
    def languages(fn) -> frozenset[int]:
        return frozenset(id(value) for value in getattr(fn, "__globals__", {}).values() if value is tl or value is tl.core)

    def counted_launch(self, *args, **kwargs):
        launches.append(languages(self.fn))
        try:
            return launch(self, *args, **kwargs)
        finally:
            launches.pop()

    def device_call_in_launch(self, *args, **kwargs):
        if not launches or not languages(self.fn) <= launches[-1]:
            return device_call(self, *args, **kwargs)
        interpreter._patch_lang = lambda fn: interpreter._LangPatchScope()
        try:
            return device_call(self, *args, **kwargs)
        finally:
            interpreter._patch_lang = patch_lang

    interpreter.GridExecutor.__call__ = counted_launch
    interpreter.InterpretedFunction.__call__ = device_call_in_launch


_use_triton_interpreter_without_cuda()
_device_calls_without_repatching()
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def chromium_path() -> str | None:
    for candidate in CHROMIUM_CANDIDATES:
        if os.path.exists(candidate):
            return candidate
    return shutil.which("chromium")


def pytest_collection_modifyitems(config, items):
    import torch

    no_cuda = pytest.mark.skip(reason="needs a CUDA device")
    no_browser = pytest.mark.skip(reason="needs Debian's chromium and the playwright package (apt-get install chromium; pip install -e '.[dev]')")
    has_browser = chromium_path() is not None and importlib.util.find_spec("playwright") is not None
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_cuda)
        if "browser" in item.keywords and not has_browser:
            item.add_marker(no_browser)


@pytest.fixture(scope="session")
def shared_data():
    """Return a function ``(*parts) -> Path`` into the shared data; skips when it is absent."""
    from mnemovision.vision.data import shared_data_path

    def get(*parts: str) -> Path:
        path = shared_data_path(*parts, start=REPO_ROOT)
        if path is None:
            pytest.skip(f"shared data {'/'.join(parts)} not found (set MNEMOVISION_DATA or place it at ../shared/data)")
        return path

    return get


@pytest.fixture
def artifacts_dir(tmp_path) -> Path:
    """Where a test saves things a person may look at (screenshots, renders): $MNEMOVISION_ARTIFACTS or tmp."""
    root = os.environ.get("MNEMOVISION_ARTIFACTS")
    path = Path(root) if root else tmp_path / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path
