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


def _triton_has_knobs() -> bool:
    return triton_importable() and hasattr(__import__("triton"), "knobs")


@pytest.mark.parametrize("value, on", [("1", True), ("true", True), ("On", True), ("0", False), ("false", False), ("2", False), ("", False)])
def test_the_interpreter_switch_is_read_the_way_triton_reads_it(monkeypatch, value, on):
    from mnemovision.kernels import triton_interpreter_enabled
    from mnemovision.kernels._backend import triton_autotune_enabled

    monkeypatch.setenv("TRITON_INTERPRET", value)
    monkeypatch.delenv("MNEMOVISION_TRITON_AUTOTUNE", raising=False)
    expected = on if _triton_has_knobs() else value == "1"  # Triton without knobs took "1" only
    assert triton_interpreter_enabled() is expected
    assert triton_autotune_enabled() is (not expected)  # no GPU driver to tune with under the interpreter
    if expected:
        assert resolve_backend("triton", "cpu") == "triton"
    else:
        with pytest.raises(ValueError, match="TRITON_INTERPRET"):
            resolve_backend("triton", "cpu")
    monkeypatch.setenv("MNEMOVISION_TRITON_AUTOTUNE", "0")
    assert triton_autotune_enabled() is False


@pytest.mark.skipif(not triton_importable(), reason="triton is not installed")
@pytest.mark.parametrize("value", ["true", "1", "0"])
def test_the_switch_agrees_with_how_the_kernels_were_decorated(value):
    """In a fresh process, as a user would set it: kernels decorated under the variable are the ones
    the backend choice, the autotune switch and ``info`` describe."""
    import json
    import subprocess
    import sys

    code = (
        "import json; from mnemovision.kernels import backend_report, resolve_backend, triton_interpreter_enabled;"
        "from mnemovision.kernels._backend import triton_autotune_enabled; from mnemovision.kernels._launch import INTERPRETED\n"
        "try: chosen = resolve_backend('triton', 'cpu')\nexcept ValueError: chosen = None\n"
        "print(json.dumps([INTERPRETED, triton_interpreter_enabled(), triton_autotune_enabled(), chosen, backend_report()['triton_interpreter']]))"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "MNEMOVISION_TRITON_AUTOTUNE"}
    out = subprocess.run([sys.executable, "-c", code], env={**env, "TRITON_INTERPRET": value}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    interpreted, enabled, autotune, chosen, reported = json.loads(out.stdout.splitlines()[-1])
    assert enabled == interpreted == reported and autotune == (not interpreted)
    assert chosen == ("triton" if interpreted else None)
    if value != "0" and _triton_has_knobs():
        assert interpreted


def test_triton_is_chosen_only_where_it_can_be_imported(monkeypatch):
    import mnemovision.kernels._backend as backend

    monkeypatch.setattr(backend, "triton_importable", lambda: False)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_backend("auto", "cuda") == "torch"
    for device in ("cuda", "cpu"):
        with pytest.raises(ValueError, match="triton importable=False"):
            resolve_backend("triton", device)
    monkeypatch.setattr(backend, "triton_importable", lambda: True)
    assert resolve_backend("auto", "cuda") == "triton" and resolve_backend("triton", "cuda") == "triton"
    monkeypatch.delenv("TRITON_INTERPRET")
    assert resolve_backend("triton", "cuda") == "triton"  # CUDA tensors need no interpreter


def test_the_interpreter_switch_without_triton_is_read_as_older_triton_did(monkeypatch):
    """Without triton to ask, ``1`` alone is on (and nothing tries to import it)."""
    import mnemovision.kernels._backend as backend

    monkeypatch.setattr(backend, "triton_importable", lambda: False)
    for value, on in (("1", True), ("true", False), ("", False)):
        monkeypatch.setenv("TRITON_INTERPRET", value)
        assert backend.triton_interpreter_enabled() is on


def test_the_cpu_path_never_imports_triton():
    """Without TRITON_INTERPRET, choosing a backend for CPU tensors and asking about the interpreter
    or autotuning import no triton (its import costs a second or more)."""
    import subprocess
    import sys

    code = (
        "import sys; from mnemovision.kernels import resolve_backend, triton_interpreter_enabled;"
        "from mnemovision.kernels._backend import triton_autotune_enabled\n"
        "assert resolve_backend('auto', 'cpu') == 'torch' and not triton_interpreter_enabled() and triton_autotune_enabled()\n"
        "print('triton' in sys.modules)"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("TRITON_INTERPRET", "MNEMOVISION_TRITON_AUTOTUNE")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False"]


def test_the_backend_report_names_versions_devices_and_the_interpreter(monkeypatch):
    from importlib.metadata import version

    import torch

    from mnemovision.kernels import backend_report

    report = backend_report()
    assert report["torch"] == torch.__version__ and report["cuda"] == torch.cuda.is_available()
    assert len(report["cuda_devices"]) == torch.cuda.device_count()
    assert report["triton"] == (__import__("triton").__version__ if triton_importable() else None)
    assert report["gsplat"] == (version("gsplat") if importlib.util.find_spec("gsplat") else None)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert backend_report()["triton_interpreter"] is True
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert backend_report()["triton_interpreter"] is False
