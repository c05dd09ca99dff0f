"""Fixtures for the kernel tests."""

import importlib.util

import pytest


class CountdownBench:
    """Stands in for the autotuner's GPU timer under the interpreter: runs each candidate once (so its
    kernel really executes on the real buffers) and reports ever shorter times, so the last candidate
    wins and the launch that follows uses a setting other than the fixed default."""

    def __init__(self):
        self.calls = 0

    def __call__(self, kernel_call, quantiles):
        kernel_call()
        self.calls += 1
        return [1e6 - self.calls] * len(quantiles)


@pytest.fixture
def autotune_on_cpu(monkeypatch):
    """The launchers' autotuned path (``TunedKernel``, Triton's autotuner and its trial runs with
    their buffer resets) under the interpreter, which otherwise always takes the fixed settings.
    Returns the bench; every autotuner starts with empty caches and gets them back afterwards."""
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    from mnemovision.kernels._launch import INTERPRETED, TunedKernel

    if not INTERPRETED:
        pytest.skip("on a GPU the autotuner times the candidates itself (tests marked gpu)")
    from mnemovision.kernels.attention import triton_impl as attention_impl
    from mnemovision.kernels.attention import triton_topk
    from mnemovision.kernels.gaussians import triton_impl as gaussians_impl
    from mnemovision.kernels.gaussians import triton_wide

    bench = CountdownBench()
    for module in (attention_impl, triton_topk, gaussians_impl, triton_wide):
        monkeypatch.setattr(module, "triton_autotune_enabled", lambda: True)
        for tuned in [v for v in vars(module).values() if isinstance(v, TunedKernel)]:
            # the timer: Triton 3.8 caches it in the instance (a cached_property over _do_bench)
            monkeypatch.setattr(tuned.autotuner, "_do_bench", bench)
            monkeypatch.setitem(vars(tuned.autotuner), "do_bench", bench)
            monkeypatch.setattr(tuned.autotuner, "cache", {})
            monkeypatch.setattr(tuned, "_chosen", {})
    return bench
