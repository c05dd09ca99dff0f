import importlib.util

import pytest

from mnemovision.kernels import resolve_backend, triton_importable


def test_torch_backend_always_resolves():
    assert resolve_backend("torch", "cpu") == "torch"
    assert resolve_backend("torch", "cuda") == "torch"


def test_auto_picks_torch_on_cpu_and_triton_on_cuda_when_importable():
    assert resolve_backend("auto", "cpu") == "torch"
    assert resolve_backend("auto", "cuda") == ("triton" if triton_importable() else "torch")


def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="TRITON_INTERPRET"):
        resolve_backend("triton", "cpu")
    if triton_importable():
        monkeypatch.setenv("TRITON_INTERPRET", "1")
        assert resolve_backend("triton", "cpu") == "triton"


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="'cuda-magic'"):
        resolve_backend("cuda-magic", "cpu")


def test_triton_is_looked_up_once_per_process(monkeypatch):
    """Every op call resolves its backend; until something imports triton (the CPU path never does)
    each spec lookup searches sys.path, so it is done once."""
    looked_up = []
    real = importlib.util.find_spec

    def counting(name, *args):
        looked_up.append(name)
        return real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", counting)
    triton_importable.cache_clear()
    try:
        for _ in range(3):
            resolve_backend("auto", "cpu")
            resolve_backend("auto", "cuda")
            resolve_backend("torch", "cuda")
        assert looked_up.count("triton") == 1
    finally:
        triton_importable.cache_clear()
