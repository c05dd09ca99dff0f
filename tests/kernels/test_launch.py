"""Host-side launch helpers: grid arithmetic, the interpreter probe, the autotuner's once-per-signature
wrapper (under TRITON_INTERPRET=1 on CPU, set by conftest; natively on a GPU)."""

import pytest
import torch

triton = pytest.importorskip("triton")
import triton.language as tl  # noqa: E402

from mnemovision.kernels._launch import INTERPRETED, Launcher, TunedKernel, as_dtype, carve, cdiv, contiguous_as, next_pow2  # noqa: E402

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


def test_as_dtype_skips_only_conversions_that_change_nothing():
    t = torch.arange(4.0, requires_grad=True)
    assert as_dtype(t, torch.float32) is t
    half = as_dtype(t, torch.float16)
    assert half.dtype == torch.float16 and torch.equal(half.float(), t.detach())
    half.sum().backward()  # a conversion stays differentiable
    assert torch.equal(t.grad, torch.ones(4))


def test_contiguous_as_skips_only_what_changes_nothing():
    t = torch.arange(6.0).view(2, 3)
    assert contiguous_as(t, torch.float32) is t
    for got in (contiguous_as(t.t(), torch.float32), contiguous_as(t, torch.int64), contiguous_as(t.t(), torch.int64)):
        assert got.is_contiguous() and got is not t
    assert torch.equal(contiguous_as(t.t(), torch.int64), t.t().long())


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

    asked, direct = [], []
    original = kernel.autotuner.run
    kernel.autotuner.run = lambda *a, **k: asked.append(1) or original(*a, **k)
    launcher_run = kernel.launcher.run
    kernel.launcher.run = lambda grid, args, kwargs: direct.append(kwargs["BLOCK"]) or launcher_run(grid, args, kwargs)
    out = _launch(kernel, bench, 37, 100)  # same signature: straight to the kernel with BLOCK = 8,
    assert not asked and direct == [8] and torch.all(out == 108), out  # through its Launcher
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


# --- Launcher: direct launches of compiled kernels -------------------------------------------------


def _probe_fn(X, Y, N, F, FLAG, BLOCK: tl.constexpr, M, SHIFT: tl.constexpr = 3):
    """The parameter kinds the project's kernels take: pointers (one optional), integers, a float,
    a flag, constexprs (one defaulted; an integer after one). Never launched: its JIT function only
    binds arguments."""
    pass


def _jit_binder():
    """(JITFunction of ``_probe_fn``, Triton's own argument binder for it on an sm_90 CUDA target):
    the binder returns what the JIT keys its compiled kernels by. Built without a GPU."""
    try:
        from triton.backends.compiler import GPUTarget
        from triton.compiler import make_backend
        from triton.runtime.jit import JITFunction, create_function_from_signature

        fn = JITFunction(_probe_fn)
        return fn, create_function_from_signature(fn.signature, fn.params, make_backend(GPUTarget("cuda", 90, 32)))
    except (ImportError, AttributeError, TypeError) as error:  # another Triton's internals
        pytest.skip(f"this Triton's JIT binder is not reachable here: {type(error).__name__}: {error}")


def _probe_calls():
    """Argument lists across every specialization the JIT makes: tensors of three dtypes at
    16-byte-aligned and unaligned addresses, None, integers around 1, multiples of 16 and the 32 and
    64-bit bounds, floats, flags, constexprs given by keyword and by position, with options."""
    base = torch.zeros(64, dtype=torch.float64)
    tensors = [base.float()[o:] for o in (0, 1, 2, 4)] + [base.half()[o:] for o in (0, 3, 8)] + [base.long()[o:] for o in (0, 1)]
    ints = [0, 1, 2, 15, 16, 17, 48, -16, -1, 2**31 - 1, 2**31, 2**31 + 16, 2**40, -(2**31), -(2**31) - 1, -(2**31) - 16, 2**63, 2**63 + 16, 2**64 - 1]
    calls = []
    for x in tensors:
        for y in (None, tensors[1]):
            for n in ints + [True, False]:  # a flag where an integer goes: u1, not the integer 1
                for f in (0.5, 1.0):
                    for flag in (True, False):
                        for block, warps in ((16, 1), (32, 1), (16, 4)):
                            calls.append(((x, y, n, f, flag), {"BLOCK": block, "M": 7, "num_warps": warps}))
                for block in (16, 32):  # by position, with the integer after it
                    calls.append(((x, y, n, 0.5, True, block, 40), {}))
                    calls.append(((x, y, 7, 0.5, True, block, n, 5), {}))  # and SHIFT
    return calls


def test_launcher_keys_are_at_least_as_fine_as_the_jit_specialization():
    """Launches with equal ``Launcher.key`` must get one compiled kernel from Triton's JIT: the key may
    split what the JIT shares (a kernel found through the JIT once more), never share what it splits
    (a kernel specialised for an aligned pointer, or for N = 1, launched with another)."""
    fn, binder = _jit_binder()
    launcher = Launcher(fn)
    groups: dict = {}
    jit_keys = set()
    for args, kwargs in _probe_calls():
        _, specialization, options = binder(*args, **kwargs)
        jit_key = (str(specialization), str(sorted(options.items())))
        jit_keys.add(jit_key)
        groups.setdefault(launcher.key(0, args, kwargs), set()).add(jit_key)
    shared = {key: found for key, found in groups.items() if len(found) > 1}
    assert not shared, next(iter(shared.items()))
    # the JIT does split these calls (so the check has teeth): by alignment, dtype, integer class, 1
    assert len(jit_keys) >= 400, len(jit_keys)
    assert len(groups) < 3 * len(jit_keys), len(groups)  # and the key splits little more: each split costs one JIT launch
    assert launcher.key(0, *_probe_calls()[0]) != launcher.key(1, *_probe_calls()[0])  # the device too
    # an integer after a constexpr keys by its class, not its value (else every new value is a new entry)
    x = torch.zeros(4)
    assert launcher.key(0, (x, None, 7, 0.5, True, 16, 40), {}) == launcher.key(0, (x, None, 7, 0.5, True, 16, 56), {})


def test_launcher_passes_every_parameter_as_the_jit_binds_it():
    fn, binder = _jit_binder()
    launcher = Launcher(fn)
    for args, kwargs in _probe_calls()[:: 97]:
        bound = tuple(binder(*args, **kwargs)[0].values())
        ours = launcher.arguments(args, kwargs)
        assert len(ours) == len(bound) == 8 and all(a is b or a == b for a, b in zip(ours, bound)), (ours, bound)
    assert launcher.arguments((1, 2, 3, 0.5, True), {"BLOCK": 16, "M": 9})[5:] == (16, 9, 3)  # the default filled in


class _FakeCompiled:
    """Stands in for a ``CompiledKernel``: records its launcher's calls."""

    function, packed_metadata = "function", "packed"

    def __init__(self):
        self.launches = []
        self.run = lambda *call: self.launches.append(call)

    def launch_metadata(self, grid, stream, *values):
        return ("metadata", grid, stream, len(values))


@pytest.fixture
def direct_launcher(monkeypatch):
    """A ``Launcher`` over ``_probe_fn`` taking its direct path on CPU: the JIT's launch replaced by a
    recorder returning a fake compiled kernel, device 0, stream 77. Returns (launcher, jit_calls, compiled)."""
    from mnemovision.kernels import _launch

    fn, _ = _jit_binder()
    compiled = _FakeCompiled()
    jit_calls = []

    def jit_run(*args, grid, warmup, **kwargs):
        jit_calls.append((grid, args, kwargs))
        return compiled

    monkeypatch.setattr(fn, "run", jit_run)
    monkeypatch.setattr(_launch, "_DIRECT", [True])
    monkeypatch.setattr(_launch.torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(_launch, "_raw_stream", lambda device: 77)
    return Launcher(fn), jit_calls, compiled


def test_launcher_launches_a_seen_specialization_directly(direct_launcher):
    launcher, jit_calls, compiled = direct_launcher
    x, y = torch.zeros(8), torch.zeros(8)
    launcher[(3,)](x, None, 37, 0.5, True, BLOCK=16, M=9, num_warps=1)
    assert len(jit_calls) == 1 and compiled.launches == []  # a new key: through the JIT
    x2 = torch.zeros(20)
    launcher[(4, 2)](x2, None, 45, 2.0, True, BLOCK=16, M=9, num_warps=1)  # same kinds: straight to the kernel
    assert len(jit_calls) == 1
    assert compiled.launches == [(4, 2, 1, 77, "function", "packed", None, None, None, x2, None, 45, 2.0, True, 16, 9, 3)]
    for args in ((x2[1:], None, 45), (x2, y, 45), (x2, None, 1), (x2, None, 48), (x2, None, 2**31), (x2.half(), None, 45)):
        launcher[(1,)](*args, 0.5, True, BLOCK=16, M=9, num_warps=1)  # unaligned, a pointer not None, N = 1, ...
    assert len(jit_calls) == 7 and len(compiled.launches) == 1  # each a new specialization: the JIT's
    launcher[(1,)](x, None, 37, 0.5, True, BLOCK=32, M=9, num_warps=1)  # another constexpr
    launcher[(1,)](x, None, 37, 0.5, True, BLOCK=16, M=9, num_warps=4)  # another option
    assert len(jit_calls) == 9
    launcher[lambda meta: (meta["N"] // meta["BLOCK"],)](x, None, 37, 0.5, True, BLOCK=16, M=9, num_warps=1)
    assert compiled.launches[-1][:3] == (2, 1, 1)  # a callable grid gets the parameters by name


def test_launcher_passes_registered_launch_hooks_with_their_metadata(direct_launcher):
    launcher, _, compiled = direct_launcher
    runtime = triton.knobs.runtime
    x = torch.zeros(8)
    for _ in range(2):
        launcher[(1,)](x, None, 37, 0.5, True, BLOCK=16, M=9)
    assert compiled.launches[-1][6:9] == (None, None, None)  # empty hook chains: nothing to call
    seen = []
    hook = seen.append
    chain = runtime.launch_enter_hook
    if chain is None or not hasattr(chain, "add"):
        pytest.skip("this Triton has no hook chains")
    chain.add(hook)
    try:
        launcher[(1,)](x, None, 37, 0.5, True, BLOCK=16, M=9)
    finally:
        chain.remove(hook)
    metadata, enter, leave = compiled.launches[-1][6:9]
    assert metadata == ("metadata", (1,), 77, 8) and enter is chain and leave is runtime.launch_exit_hook


def test_launcher_leaves_tensor_keywords_and_pre_run_hooks_to_the_jit(direct_launcher):
    launcher, jit_calls, compiled = direct_launcher
    for _ in range(3):  # a tensor by keyword: keyed by identity, so never recorded (nothing kept alive)
        launcher[(1,)](Y=None, X=torch.zeros(4), N=37, F=0.5, FLAG=True, BLOCK=16, M=9)
    assert len(jit_calls) == 3 and launcher._seen == {} and compiled.launches == []
    launcher.kernel.pre_run_hooks.append(lambda *a, **k: None)
    x = torch.zeros(8)
    for _ in range(2):
        launcher[(1,)](x, None, 37, 0.5, True, BLOCK=16, M=9)
    assert len(jit_calls) == 5 and compiled.launches == []


def test_direct_launches_only_where_the_launch_protocol_is_known(monkeypatch):
    from mnemovision.kernels import _launch

    monkeypatch.delenv("MNEMOVISION_TRITON_DIRECT_LAUNCH", raising=False)
    if INTERPRETED:  # decided by how the kernels were decorated
        assert _launch._direct_supported() is False
    monkeypatch.setattr(_launch, "INTERPRETED", False)
    for version, expected in (("3.6.0", True), ("3.8.1", True), ("3.5.1", False), ("3.9.0", False), ("4.0.0", False)):
        monkeypatch.setattr(triton, "__version__", version)
        assert _launch._direct_supported() is expected, version
    monkeypatch.setattr(triton, "__version__", "3.6.0")
    monkeypatch.setenv("MNEMOVISION_TRITON_DIRECT_LAUNCH", "0")
    assert _launch._direct_supported() is False
    monkeypatch.setenv("MNEMOVISION_TRITON_DIRECT_LAUNCH", "1")
    monkeypatch.setattr(triton.knobs.runtime, "debug", True)
    assert _launch._direct_supported() is False


@triton.jit
def _fill_kernel(Out, N, VALUE, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(Out + offs, tl.zeros([BLOCK], dtype=tl.int32) + VALUE, mask=offs < N)


def test_launcher_runs_kernels_across_specializations():
    """Through the interpreter here; on a GPU each launch whose key was seen before goes straight to
    the compiled kernel: a kernel specialised for N = 1 or VALUE = 1, a multiple of 16 or an aligned
    pointer launched with other arguments would leave elements unwritten, write past N or write 1."""
    from mnemovision.kernels import _launch

    launcher = Launcher(_fill_kernel)
    buffer = torch.zeros(80, dtype=torch.int32, device=DEVICE)
    keys = []
    for round_ in range(2):
        for value, (start, n) in enumerate(((0, 37), (0, 1), (1, 37), (0, 32), (3, 16), (0, 1), (2, 45)), 1):
            buffer.zero_()
            value += 10 * round_
            launcher[(cdiv(n, 16),)](buffer[start:], n, value, BLOCK=16)
            expected = torch.zeros(80, dtype=torch.int32, device=DEVICE)
            expected[start : start + n] = value
            assert torch.equal(buffer, expected), (round_, start, n)
            keys.append(launcher.key(0 if INTERPRETED else torch.cuda.current_device(), (buffer[start:], n, value), {"BLOCK": 16}))
    if _launch._direct_supported():  # one JIT launch per key, the other 6 of the 14 straight to the kernel
        assert len(launcher._seen) == len(set(keys)) == 8
    else:
        assert launcher._seen == {}
