"""The test suite's interpreter speed-up (tests/conftest.py): device-function calls inside a launch
skip Triton's language re-patching, and compute exactly what they computed before."""

import os

import pytest
import torch

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")


@triton.jit
def _twice_plus(x, k):
    return 2.0 * x + k


@triton.jit
def _chain_kernel(x_ptr, out_ptr, STEPS: tl.constexpr, BLOCK: tl.constexpr):
    offsets = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offsets)
    for k in range(STEPS):
        x = _twice_plus(x, k * 1.0)  # a device call per iteration, as the rasterizer's per-Gaussian helpers
    tl.store(out_ptr + offsets, x)


def chain(x: torch.Tensor, steps: int) -> torch.Tensor:
    out = torch.empty_like(x)
    _chain_kernel[(1,)](x, out, STEPS=steps, BLOCK=x.numel())
    return out


@pytest.mark.triton
def test_device_calls_in_a_launch_compute_the_same_without_a_walk_each(monkeypatch):
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("compiled kernels (a GPU): there is no interpreter to speed up")
    from triton.runtime import interpreter

    if interpreter.InterpretedFunction.__call__.__name__ != "device_call_in_launch":
        pytest.skip(f"this Triton ({triton.__version__}) lacks the interpreter internals the speed-up wraps; the tests run at Triton's own pace")
    walks = []
    original = interpreter._patch_builtin
    monkeypatch.setattr(interpreter, "_patch_builtin", lambda *args: walks.append(1) or original(*args))
    x = torch.arange(16, dtype=torch.float32) / 7.0
    counts = {}
    for steps in (2, 20):
        walks.clear()
        want = x.double()
        for k in range(steps):
            want = 2.0 * want + k
        torch.testing.assert_close(chain(x, steps).double(), want, rtol=1e-6, atol=0)
        counts[steps] = len(walks)
    assert counts[2] == counts[20] > 0, counts  # the launch's own walks, none per device call (Triton alone: 12 and 84)
