"""Host-side launch helpers: grid arithmetic, the interpreter probe, the autotuner's once-per-signature
wrapper (under TRITON_INTERPRET=1 on CPU, set by conftest; natively on a GPU)."""

import pytest
import torch

triton = pytest.importorskip("triton")
import triton.language as tl  # noqa: E402

from mnemovision.kernels._launch import INTERPRETED, TunedKernel, carve, cdiv, next_pow2  # noqa: E402

pytestmark = pytest.mark.triton
DEVICE = "cpu" if INTERPRETED else "cuda"


def test_grid_arithmetic_matches_triton():
    for n in range(0, 3000):
        assert next_pow2(n) == triton.next_power_of_2(n), n
        for b in (1, 3, 16, 1024):
            assert cdiv(n, b) == triton.cdiv(n, b), (n, b)


def test_carve_gives_consecutive_contiguous_views_of_one_buffer():
    buffer = torch.arange(2 * 3 + 4 + 2 * 1 * 5, dtype=torch.float32)
    a, b, c = carve(buffer, ((2, 3), (4,), (2, 1, 5)))
    assert [t.shape for t in (a, b, c)] == [(2, 3), (4,), (2, 1, 5)]
    assert all(t.is_contiguous() and t.untyped_storage().data_ptr() == buffer.untyped_storage().data_ptr() for t in (a, b, c))
    torch.testing.assert_close(torch.cat([a.flatten(), b, c.flatten()]), buffer, rtol=0, atol=0)
    a.add_(100)  # views: writes reach the buffer
    assert float(buffer[5]) == 105.0 and float(buffer[6]) == 6.0


def test_interpreted_reports_how_kernels_were_decorated():
    from mnemovision.kernels import triton_interpreter_enabled

    assert INTERPRETED == triton_interpreter_enabled()  # per value in a fresh process: tests/kernels/test_backend.py


@triton.jit
def _stamp_kernel(Out, N, SHIFT: tl.constexpr, BLOCK: tl.constexpr):
    """Out[i] = BLOCK + SHIFT: which candidate ran, and with which keyword setting."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(Out + offs, tl.zeros([BLOCK], dtype=tl.int32) + BLOCK + SHIFT, mask=offs < N)


class _Bench:
    """A stand-in for the autotuner's timer: runs the candidate once and calls BLOCK = 8 faster."""

    def __init__(self):
        self.out = None
        self.calls = 0

    def __call__(self, kernel_call, quantiles):
        self.calls += 1
        kernel_call()
        ms = 0.5 if int(self.out[0]) % 100 == 8 else 1.0
        return [ms, ms, ms]


def _tuned(bench):
    configs = [triton.Config({"BLOCK": 4}, num_warps=1), triton.Config({"BLOCK": 8}, num_warps=1)]
    return TunedKernel(triton.autotune(configs, key=["N"], do_bench=bench)(_stamp_kernel))


def _launch(kernel, bench, n, shift, dtype=torch.int32):
    out = torch.zeros(n, dtype=dtype, device=DEVICE)
    bench.out = out
    kernel[lambda meta: (cdiv(n, meta["BLOCK"]),)](out, n, SHIFT=shift)
    return out


def test_tuned_kernel_asks_the_autotuner_once_per_signature():
    bench = _Bench()
    kernel = _tuned(bench)
    out = _launch(kernel, bench, 37, 100)
    assert bench.calls == 2 and kernel.best_config.kwargs["BLOCK"] == 8  # attributes are the autotuner's
    assert torch.all(out == 108)

    asked = []
    original = kernel.autotuner.run
    kernel.autotuner.run = lambda *a, **k: asked.append(1) or original(*a, **k)
    out = _launch(kernel, bench, 37, 100)  # same signature: straight to the kernel with BLOCK = 8
    assert not asked and torch.all(out == 108), out
    out = _launch(kernel, bench, 37, 200)  # another keyword setting: through the autotuner again,
    assert asked == [1] and torch.all(out == 208)  # which has N = 37 cached (no new benchmark)
    assert bench.calls == 2
    out = _launch(kernel, bench, 50, 100)  # a new key of the autotuner's: benchmarked anew
    assert asked == [1, 1] and bench.calls == 4 and torch.all(out == 108)
    out = _launch(kernel, bench, 50, 100, torch.int64)  # another dtype: the autotuner's key has dtypes too
    assert asked == [1, 1, 1] and out.dtype == torch.int64 and torch.all(out == 108)
    _launch(kernel, bench, 50, 100, torch.int64)
    assert asked == [1, 1, 1]
    for _ in range(2):  # tensors given by keyword count by their dtype, not as objects: one signature
        out = torch.zeros(50, dtype=torch.int32, device=DEVICE)
        bench.out = out
        kernel[lambda meta: (cdiv(50, meta["BLOCK"]),)](Out=out, N=50, SHIFT=300)
        assert torch.all(out == 308)
    assert asked == [1, 1, 1, 1]


def test_a_tuned_kernel_copies_and_shares_its_autotuner():
    import copy

    kernel = _tuned(_Bench())
    clone = copy.copy(kernel)  # copying builds the object without __init__: attribute lookups must not recurse
    assert clone.autotuner is kernel.autotuner and clone.configs is kernel.configs


def test_tuned_kernel_keeps_launching_through_the_autotuner_for_configs_with_hooks():
    hooked = []
    configs = [triton.Config({"BLOCK": 4}, num_warps=1, pre_hook=lambda nargs: hooked.append(nargs["N"]))]
    kernel = TunedKernel(triton.autotune(configs, key=["N"])(_stamp_kernel))
    bench = _Bench()
    for _ in range(2):
        out = _launch(kernel, bench, 9, 0)
        assert torch.all(out == 4)
    assert hooked == [9, 9]
