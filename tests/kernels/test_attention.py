"""memory_attention: both backends against a materialised float64 reference."""

import importlib.util
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnemovision.kernels import AttentionOutput, memory_attention
from mnemovision.kernels._testing import FLOORS, assert_kernel_close
from mnemovision.kernels.attention import ref

SIMS = ("dot", "cosine", "neg_l2")
CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
HAS_TRITON = importlib.util.find_spec("triton") is not None


def make(b, h, nq, m, d, dv, dtype=torch.float64, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, nq, d, generator=g, dtype=torch.float64)
    k = torch.randn(b, h, m, d, generator=g, dtype=torch.float64)
    v = torch.randn(b, h, m, dv, generator=g, dtype=torch.float64)
    return [t.to(device=device, dtype=dtype).requires_grad_(True) for t in (q, k, v)]


def similarity_logits(q, k, similarity, scale, mask=None):
    """Logits straight from the definitions (not through ``ref.prepare``): scale * q.k, scale *
    cos(q, k), or -scale * |q - k|^2 (its -scale |q|^2 term included); masked keys -inf."""
    if similarity == "cosine":
        logits = scale * F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-1, -2)
    elif similarity == "neg_l2":
        logits = -scale * (q[..., :, None, :] - k[..., None, :, :]).pow(2).sum(-1)
    else:
        logits = scale * q @ k.transpose(-1, -2)
    if mask is not None:
        logits = logits.masked_fill(mask[:, None, None, :], float("-inf"))
    return logits


def oracle(q, k, v, *, top_k=None, similarity="dot", scale=None, mask=None, extra=None):
    """Materialised float64 reference: full logits, top-k on memory keys only, one joint softmax."""
    q64, k64, v64 = (t.double() for t in (q, k, v))
    scale = ref.default_scale(similarity, q.shape[-1]) if scale is None else scale
    logits = similarity_logits(q64, k64, similarity, scale, mask)
    if top_k is not None and top_k < logits.shape[-1]:
        vals, idx = torch.topk(logits, top_k, dim=-1)
        logits = torch.full_like(logits, float("-inf")).scatter(-1, idx, vals)
    values = v64
    if extra is not None:
        ke, ve = (t.double() for t in extra)
        logits = torch.cat([logits, similarity_logits(q64, ke, similarity, scale)], dim=-1)
        values = torch.cat([v64, ve], dim=2)
    lse = torch.logsumexp(logits, -1, keepdim=True)
    weights = torch.where(torch.isfinite(lse), torch.exp(logits - torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))), torch.zeros_like(logits))
    return weights @ values, weights[..., : k.shape[2]].sum(-2)


def grads(out, inputs, seed=1):
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(out)
    return torch.autograd.grad((out * g).sum(), inputs, allow_unused=True)


# ---------------------------------------------------------------------------------------------
# torch path against the oracle, float64


@pytest.mark.parametrize("similarity", SIMS)
@pytest.mark.parametrize("top_k", [None, 1, 7])
@pytest.mark.parametrize("shape", [(2, 3, 37, 53, 8, 5), (1, 1, 1, 1, 4, 3), (1, 2, 1, 29, 16, 16), (1, 1, 300, 70, 3, 2)])
def test_torch_path_matches_the_oracle(similarity, top_k, shape):
    q, k, v = make(*shape)
    mask = torch.zeros(shape[0], shape[3], dtype=torch.bool)
    mask[:, -max(1, shape[3] // 5) :] = shape[3] > 1  # pad the tail (keeps at least one key)
    result = memory_attention(q, k, v, top_k=top_k, similarity=similarity, key_padding_mask=mask, return_usage=True, backend="torch")
    assert isinstance(result, AttentionOutput)
    expected, usage = oracle(q, k, v, top_k=top_k, similarity=similarity, mask=mask)
    torch.testing.assert_close(result.out, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(result.usage, usage, rtol=1e-10, atol=1e-10)
    assert torch.all(result.usage[:, :, mask[0]] == 0)
    for got, want in zip(grads(result.out, (q, k, v)), grads(expected, (q, k, v))):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("top_k", [None, 4])
def test_extra_tokens_share_one_softmax_with_the_memory(top_k):
    q, k, v = make(2, 2, 19, 23, 8, 6)
    ke, ve = make(2, 2, 11, 11, 8, 6, seed=5)[1:]
    result = memory_attention(q, k, v, top_k=top_k, extra_q_kv=(ke, ve), return_usage=True, backend="torch")
    expected, usage = oracle(q, k, v, top_k=top_k, extra=(ke, ve))
    torch.testing.assert_close(result.out, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(result.usage, usage, rtol=1e-10, atol=1e-10)
    assert float(result.usage.sum()) < 19 * 2 * 2  # the extra tokens took part of every query's weight
    for got, want in zip(grads(result.out, (q, k, v, ke, ve)), grads(expected, (q, k, v, ke, ve))):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


def drawn_case(seed):
    """A call drawn at random: (q, k, v, extra pair or None, memory_attention kwargs). Unaligned and
    tiny sizes, rows long enough for the tiled top-k selection, every similarity, top-k from 1 to
    past M, masks of any density (a row may lose every memory key: its output is zeros unless extra
    tokens are drawn), logits up to thousands (temperature 0.05 on unnormalised vectors). Cosine
    keeps D >= 2, where D = 1 would tie every key at +-1 and leave the top-k choice ambiguous."""
    rng = np.random.default_rng(seed)
    b, h = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    nq, m = int(rng.choice([1, 2, 7, 33, 70])), int(rng.choice([1, 2, 5, 31, 64, 65, 130, 300, 700]))
    similarity = str(rng.choice(SIMS))
    d, dv = int(rng.choice([1, 3, 8, 16, 33])) + (similarity == "cosine"), int(rng.choice([1, 2, 5, 16]))
    q, k, v = make(b, h, nq, m, d, dv, seed=seed)
    with torch.no_grad():
        magnitude = float(rng.choice([0.1, 1.0, 3.0]))
        q.mul_(magnitude)
        k.mul_(magnitude)
    kwargs = {"similarity": similarity, "top_k": [None, None, 1, 2, 7, 30, m, m + 3][int(rng.integers(8))], "return_usage": True}
    if rng.random() < 0.4:
        kwargs["key_padding_mask"] = torch.rand(b, m, generator=torch.Generator().manual_seed(seed)) < float(rng.choice([0.2, 0.6, 1.0]))
    pick = rng.random()
    if pick < 0.2:
        kwargs["temperature"] = float(rng.choice([0.05, 0.5]))
    elif pick < 0.4:
        kwargs["scale"] = float(rng.choice([0.01, 2.0]))
    extra = make(b, h, 1, int(rng.choice([1, 3, 20])), d, dv, seed=seed + 1)[1:] if rng.random() < 0.3 else None
    return q, k, v, extra, kwargs


@pytest.mark.parametrize("seed", range(100))
def test_drawn_calls_match_the_oracle(seed):
    """``drawn_case`` calls of the torch path against the float64 oracle: out, usage, gradients."""
    q, k, v, extra, kwargs = drawn_case(seed)
    result = memory_attention(q, k, v, extra_q_kv=extra, backend="torch", **kwargs)
    scale = kwargs.get("scale", 1.0 / kwargs["temperature"] if "temperature" in kwargs else None)
    expected, usage = oracle(q, k, v, top_k=kwargs["top_k"], similarity=kwargs["similarity"], scale=scale, mask=kwargs.get("key_padding_mask"), extra=extra)
    assert torch.isfinite(result.out).all()
    torch.testing.assert_close(result.out, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(result.usage, usage, rtol=1e-10, atol=1e-10)
    leaves = (q, k, v, *(extra or ()))
    for name, got, want in zip(("q", "k", "v", "k_extra", "v_extra"), grads(result.out, leaves), grads(expected, leaves)):
        # logits reach thousands here: a relative tolerance of their size
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10 * max(1.0, float(want.abs().max())), msg=lambda m, name=name: f"d{name}: {m}")


def test_topk_gradients_reach_only_selected_keys():
    q, k, v = make(1, 1, 1, 40, 8, 4)
    out = memory_attention(q, k, v, top_k=3, backend="torch")
    dk, dv = torch.autograd.grad(out.sum(), (k, v))
    assert int((dv.abs().sum(-1) > 0).sum()) == 3
    assert int((dk.abs().sum(-1) > 0).sum()) == 3


def test_gradcheck_float64():
    q, k, v = make(1, 2, 5, 7, 3, 2)
    mask = torch.tensor([[False] * 6 + [True]])
    for top_k in (None, 3):
        for sim in SIMS:
            fn = lambda q, k, v: memory_attention(q, k, v, top_k=top_k, similarity=sim, key_padding_mask=mask, backend="torch")  # noqa: E731
            assert torch.autograd.gradcheck(fn, (q, k, v))


def test_temperature_and_cosine_as_m3_uses_them():
    q, k, v = make(1, 1, 6, 9, 16, 4)
    a = memory_attention(q, k, v, similarity="cosine", temperature=0.05, backend="torch")
    b = memory_attention(q, k, v, similarity="cosine", scale=20.0, backend="torch")
    torch.testing.assert_close(a, b)
    qn, kn = torch.nn.functional.normalize(q, dim=-1), torch.nn.functional.normalize(k, dim=-1)
    torch.testing.assert_close(a, torch.softmax(qn @ kn.transpose(-1, -2) / 0.05, -1) @ v)


def test_neg_l2_is_xmem_similarity():
    q, k, v = make(1, 1, 5, 8, 4, 3)
    scale = 0.5
    out = memory_attention(q, k, v, similarity="neg_l2", scale=scale, backend="torch")
    logits = -scale * torch.cdist(q, k) ** 2
    torch.testing.assert_close(out, torch.softmax(logits, -1) @ v)


def test_all_keys_masked_gives_zeros_not_nan():
    q, k, v = make(1, 1, 4, 5, 3, 2)
    mask = torch.ones(1, 5, dtype=torch.bool)
    result = memory_attention(q, k, v, key_padding_mask=mask, return_usage=True, backend="torch")
    assert torch.equal(result.out, torch.zeros_like(result.out))
    (dq,) = torch.autograd.grad(result.out.sum(), (q,))
    assert torch.isfinite(dq).all()


def test_chunking_bounds_memory_but_not_results():
    """Query chunks (forward) and [rows, key_tile] tiles (backward), with uneven last chunks and
    tiles, a key bias (neg_l2) and masked keys: the same outputs and gradients as one block."""
    q, k, v = make(2, 1, 100, 30, 4, 3)
    mask = torch.zeros(2, 30, dtype=torch.bool)
    mask[0, 5:9] = True

    def run(**chunking):
        qp, kp, bias, factor = ref.prepare(q, k, "neg_l2", 0.5, mask)
        out, lse = ref.dense_attention(qp, kp, v, bias, factor, **chunking)
        return (out, lse, *torch.autograd.grad((out * out).sum() + lse.sum(), (q, k, v)))

    for got, want in zip(run(chunk=7, key_tile=4), run(chunk=1000, key_tile=1000)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(similarity="euclid"), "similarity"),
        (dict(top_k=0), "top_k"),
        (dict(scale=1.0, temperature=1.0), "not both"),
        (dict(key_padding_mask=torch.zeros(1, 3)), "key_padding_mask"),
        (dict(extra_q_kv=(torch.zeros(1, 1, 2, 4),)), "extra_q_kv"),
        (dict(backend="cuda"), "backend"),
        # found by drawing bad values per argument: these gave NaN outputs or a bare TypeError
        (dict(scale=float("nan")), "scale must be a finite number, got nan"),
        (dict(scale=float("inf")), "scale must be a finite number, got inf"),
        (dict(scale="a"), "scale must be a finite number, got 'a'"),
        (dict(temperature="x"), "temperature must be a finite number, got 'x'"),
        (dict(temperature=-0.5), "temperature must be positive"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    q, k, v = (t.detach().float() for t in make(1, 1, 2, 5, 4, 3))
    with pytest.raises(ValueError, match=message):
        memory_attention(q, k, v, **kwargs)


def test_empty_extra_tokens_read_the_memory_alone_and_numpy_top_k_works():
    q, k, v = (t.detach() for t in make(1, 2, 3, 9, 4, 5))
    empty = (k[:, :, :0], v[:, :, :0])  # Ne = 0: a reshape inside the extra path failed before
    for top_k in (None, 4):
        want = memory_attention(q, k, v, top_k=top_k, return_usage=True)
        got = memory_attention(q, k, v, top_k=None if top_k is None else np.int64(top_k), extra_q_kv=empty, return_usage=True)
        torch.testing.assert_close(got.out, want.out, rtol=0, atol=0)
        torch.testing.assert_close(got.usage, want.usage, rtol=0, atol=0)
    with pytest.raises(ValueError, match="M = 0 memory slots and there are no extra keys"):
        memory_attention(q, k[:, :, :0], v[:, :, :0], extra_q_kv=empty)


def test_bad_shapes_are_named():
    q, k, v = (t.detach().float() for t in make(1, 1, 2, 5, 4, 3))
    with pytest.raises(ValueError, match=r"k must have shape \[B=1, H=1, M, D=4\]"):
        memory_attention(q, k[..., :3], v)
    with pytest.raises(ValueError, match="v must have shape"):
        memory_attention(q, k, v[:, :, :4])
    with pytest.raises(ValueError, match="q must have shape"):
        memory_attention(q[0], k, v)
    with pytest.raises(ValueError, match="float32 or float64"):
        memory_attention(q.half(), k.half(), v.half())



def _bad_call(case):
    """q [2, 3, 4, 5], k [2, 3, 6, 5], v [2, 3, 6, 7] float32 with one argument made wrong."""
    q, k, v = (t.detach().float() for t in make(2, 3, 4, 6, 5, 7))
    ke, ve = k[:, :, :2].clone(), v[:, :, :2].clone()
    kwargs = {}
    if case == "q not a tensor":
        q = q.numpy()
    elif case == "integer keys":
        k = k.long()
    elif case == "k batch":
        k = k[:1]
    elif case == "k heads":
        k = k[:, :2]
    elif case == "v batch":
        v = v[:1]
    elif case == "v heads":
        v = v[:, :1]
    elif case == "no queries":
        q = q[:, :, :0]
    elif case == "no value channels":
        v = v[..., :0]
    elif case == "v dtype":
        v = v.double()
    elif case == "top_k float":
        kwargs = dict(top_k=2.0)
    elif case == "top_k bool":
        kwargs = dict(top_k=True)
    elif case == "temperature zero":
        kwargs = dict(temperature=0.0)
    elif case == "mask not bool":
        kwargs = dict(key_padding_mask=torch.zeros(2, 6, dtype=torch.uint8))
    elif case == "mask shape":
        kwargs = dict(key_padding_mask=torch.zeros(2, 5, dtype=torch.bool))
    elif case == "extra not a pair":
        kwargs = dict(extra_q_kv=ke)
    elif case == "extra values' tokens":
        kwargs = dict(extra_q_kv=(ke, ve[:, :, :1]))
    elif case == "extra values' channels":
        kwargs = dict(extra_q_kv=(ke, ve[..., :3]))
    elif case == "extra keys' dtype":
        kwargs = dict(extra_q_kv=(ke.double(), ve))
    elif case == "extra values' dtype":
        kwargs = dict(extra_q_kv=(ke, ve.double()))
    elif case == "meta device":
        k, v = k.to("meta"), v.to("meta")
    return q, k, v, kwargs


@pytest.mark.parametrize("case, message", [
    ("q not a tensor", r"q must be a torch.Tensor \[B, H, Nq, D\], got ndarray"),
    ("integer keys", "k must be floating point, got torch.int64"),
    ("k batch", r"k must have shape \[B=2, H=3, M, D=5\], got \(1, 3, 6, 5\)"),
    ("k heads", r"k must have shape \[B=2, H=3, M, D=5\], got \(2, 2, 6, 5\)"),
    ("v batch", r"v must have shape \[B=2, H=3, M=6, Dv\], got \(1, 3, 6, 7\)"),
    ("v heads", r"v must have shape \[B=2, H=3, M=6, Dv\]"),
    ("no queries", r"need Nq, D, Dv >= 1, got q \(2, 3, 0, 5\)"),
    ("no value channels", r"need Nq, D, Dv >= 1, got q \(2, 3, 4, 5\), v \(2, 3, 6, 0\)"),
    ("v dtype", "q, k, v must share a dtype, got torch.float32, torch.float32, torch.float64"),
    ("meta device", "q, k, v must be on one device, got cpu, meta, meta"),
    ("top_k float", "top_k must be a positive int or None, got 2.0"),
    ("top_k bool", "top_k must be a positive int or None, got True"),
    ("temperature zero", "temperature must be positive, got 0.0"),
    ("mask not bool", r"key_padding_mask must be a bool tensor \[B=2, M=6\] \(True = padded\), got \(2, 6\)"),
    ("mask shape", r"key_padding_mask must be a bool tensor \[B=2, M=6\] \(True = padded\), got \(2, 5\)"),
    ("extra not a pair", "extra_q_kv must be a pair"),
    ("extra values' tokens", r"extra_q_kv must be \(\[2, 3, Ne, 5\], \[2, 3, Ne, 7\]\), got \(2, 3, 2, 5\), \(2, 3, 1, 7\)"),
    ("extra values' channels", r"extra_q_kv must be \(\[2, 3, Ne, 5\], \[2, 3, Ne, 7\]\), got \(2, 3, 2, 5\), \(2, 3, 2, 3\)"),
    ("extra keys' dtype", "extra_q_kv must have q's dtype torch.float32"),
    ("extra values' dtype", "extra_q_kv must have q's dtype torch.float32"),
])
def test_every_argument_check_names_the_argument_and_what_it_expected(case, message):
    q, k, v, kwargs = _bad_call(case)
    with pytest.raises(ValueError, match=message):
        memory_attention(q, k, v, backend="torch", **kwargs)


def test_top_k_of_every_key_runs_dense_and_an_empty_memory_reports_empty_usage(monkeypatch):
    q, k, v = (t.detach() for t in make(1, 2, 3, 5, 4, 6))
    selected = []
    real = ref.topk_readout
    monkeypatch.setattr(ref, "topk_readout", lambda *a, **kw: selected.append(a[4]) or real(*a, **kw))
    dense = memory_attention(q, k, v)
    for top_k in (5, 9):  # keeping every key is dense attention: no selection pass
        torch.testing.assert_close(memory_attention(q, k, v, top_k=top_k), dense, rtol=0, atol=0)
    assert selected == []
    memory_attention(q, k, v, top_k=4)
    assert selected == [4]
    for dtype in (torch.float32, torch.float64):  # no memory yet, only the current frame's tokens
        qd, kd, vd = q.to(dtype), k.to(dtype), v.to(dtype)
        got = memory_attention(qd, kd[:, :, :0], vd[:, :, :0], extra_q_kv=(kd, vd), return_usage=True)
        assert got.usage.shape == (1, 2, 0) and got.usage.dtype == dtype
        torch.testing.assert_close(got.out, memory_attention(qd, kd, vd), rtol=0, atol=0)

# ---------------------------------------------------------------------------------------------
# triton path: under TRITON_INTERPRET=1 on CPU (set by conftest), natively on a GPU


def triton_case(shape, dtype, similarity, top_k, masked, device=DEVICE):
    q, k, v = make(*shape, dtype=dtype, device=device)
    mask = None
    if masked:
        mask = torch.zeros(shape[0], shape[3], dtype=torch.bool, device=device)
        mask[:, ::4] = True
    args = dict(top_k=top_k, similarity=similarity, key_padding_mask=mask, return_usage=True)
    got = memory_attention(q, k, v, backend="triton", **args)
    same = memory_attention(q, k, v, backend="torch", **args) if device == "cpu" else None
    q64, k64, v64 = (t.detach().double().cpu().requires_grad_(True) for t in (q, k, v))
    mask64 = None if mask is None else mask.cpu()
    expected, usage = oracle(q64, k64, v64, top_k=top_k, similarity=similarity, mask=mask64)
    return (q, k, v), got, same, (q64, k64, v64), expected, usage


def same_precision_reference(inputs, top_k, similarity, mask):
    """The PyTorch path at the inputs' precision (float32 on GPU: the cuda tensors in float32)."""
    q, k, v = (t.detach().float().requires_grad_(True) for t in inputs)
    res = memory_attention(q, k, v, top_k=top_k, similarity=similarity, key_padding_mask=mask, return_usage=True, backend="torch")
    return (q, k, v), res


@pytest.mark.triton
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
@pytest.mark.parametrize("similarity", SIMS)
@pytest.mark.parametrize("top_k", [None, 5])
@pytest.mark.parametrize("shape", [(1, 2, 37, 45, 20, 24), (2, 1, 1, 1, 8, 3), (1, 1, 17, 33, 64, 130), (1, 2, 11, 333, 16, 40)])
def test_triton_matches_the_reference(similarity, top_k, shape):
    masked = shape[3] > 4
    inputs, got, _, inputs64, expected, usage = triton_case(shape, torch.float32, similarity, top_k, masked)
    mask = None
    if masked:
        mask = torch.zeros(shape[0], shape[3], dtype=torch.bool, device=DEVICE)
        mask[:, ::4] = True
    ref_inputs, same = same_precision_reference(inputs, top_k, similarity, mask)
    assert_kernel_close(got.out, same.out, expected.to(got.out.device), "out")
    assert_kernel_close(got.usage.float(), same.usage.float(), usage.to(got.out.device), "usage")
    g = torch.randn(expected.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    got_grads = torch.autograd.grad((got.out * g.to(got.out)).sum(), inputs)
    same_grads = torch.autograd.grad((same.out * g.to(same.out)).sum(), ref_inputs)
    want_grads = torch.autograd.grad((expected * g).sum(), inputs64)
    for name, a, b_, c in zip("qkv", got_grads, same_grads, want_grads):
        assert_kernel_close(a, b_, c.to(a.device), f"d{name}")


@pytest.mark.triton
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_triton_takes_a_numpy_top_k():
    """The launchers do integer arithmetic on top_k (a numpy int has no bit_length): it is made an int first."""
    q, k, v = (t.detach() for t in make(1, 1, 5, 9, 16, 16, dtype=torch.float32, device=DEVICE))
    got = memory_attention(q, k, v, top_k=np.int64(3), return_usage=True, backend="triton")
    want = memory_attention(q, k, v, top_k=3, return_usage=True, backend="triton")
    torch.testing.assert_close(got.out, want.out, rtol=0, atol=0)
    torch.testing.assert_close(got.usage, want.usage, rtol=0, atol=0)


@pytest.mark.triton
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
@pytest.mark.parametrize("m", [64, 70])
def test_triton_dense_with_whole_key_blocks_masked(m):
    """The dense forward runs whole key blocks without key masks and checks keys against M only in
    a partial last block: a memory of whole blocks (M = 64: none partial at the interpreter's 16 and
    the GPU's 32-128 keys a block) and one with a partial block (M = 70), where one row's first 32
    keys are masked (its running maximum stays -inf through whole blocks) and another row keeps only
    its last key (in the partial block at M = 70). Forward and gradients against float64."""
    q, k, v = make(2, 1, 19, m, 16, 8, dtype=torch.float32, device=DEVICE)
    mask = torch.zeros(2, m, dtype=torch.bool, device=DEVICE)
    mask[0, :32] = True
    mask[1, :-1] = True
    got = memory_attention(q, k, v, key_padding_mask=mask, backend="triton")
    inputs64 = [t.detach().double().cpu().requires_grad_(True) for t in (q, k, v)]
    expected, _ = oracle(*inputs64, mask=mask.cpu())
    torch.testing.assert_close(got.double().cpu(), expected, rtol=1e-4, atol=1e-5)
    for name, a, b in zip("qkv", grads(got, (q, k, v)), grads(expected, inputs64)):
        torch.testing.assert_close(a.double().cpu(), b, rtol=1e-4, atol=1e-5, msg=lambda text, name=name: f"d{name}: {text}")


@pytest.mark.triton
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
@pytest.mark.parametrize("tile", [2, 4, 32])
@pytest.mark.parametrize("shape,top_k", [((1, 2, 23, 300, 16), 5), ((2, 1, 7, 97, 8), 7), ((1, 1, 9, 1000, 64), 30), ((1, 1, 5, 40, 3), 1)])
@pytest.mark.parametrize("registers", ["fit", "fallback", "no bias"])
def test_triton_topk_selection_is_exact(shape, top_k, tile, registers, monkeypatch):
    """The tile-maximum selection finds exactly torch.topk's keys (random logits have no ties),
    masked keys included, for tiles that split M unevenly and for more tiles than top_k; and with no
    bias at all (the kernels' bias-free variant)."""
    from mnemovision.kernels.attention import triton_topk

    if registers == "fallback":  # selection too large for one program: the chunked torch.topk path
        monkeypatch.setattr(triton_topk, "MAX_TILES", 1)
    b, h, nq, m, d = shape
    g = torch.Generator().manual_seed(5)
    q, k = torch.randn(b, h, nq, d, generator=g).to(DEVICE), torch.randn(b, h, m, d, generator=g).to(DEVICE)
    bias = torch.randn(b, h, m, generator=g).to(DEVICE)
    bias[..., ::3] = float("-inf")
    if registers == "no bias":
        bias = None
    got = triton_topk.topk_select(q, k, bias, top_k, tile=tile)
    want = torch.topk(q @ k.transpose(-1, -2) + (0.0 if bias is None else bias[..., None, :]), top_k, dim=-1).indices
    assert got.shape == (b, h, nq, top_k)
    assert torch.equal(got.sort(-1).values, want.sort(-1).values)


@pytest.mark.triton
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_triton_topk_selection_falls_back_exactly_when_one_program_cannot_hold_it(monkeypatch):
    """The selection program holds a query's row of tile maxima (at most MAX_TILES, padded to a
    power of two) and its candidate block (top-k tiles x tile keys, at most MAX_CANDIDATES); when
    either would not fit, the chunked PyTorch selection runs instead, with the same keys."""
    from mnemovision.kernels.attention import ref as attention_ref
    from mnemovision.kernels.attention import triton_topk

    calls = []
    chunked = attention_ref.topk_select
    monkeypatch.setattr(attention_ref, "topk_select", lambda *a, **kw: calls.append(1) or chunked(*a, **kw))
    g = torch.Generator().manual_seed(13)
    q, k = torch.randn(1, 1, 4, 8, generator=g).to(DEVICE), torch.randn(1, 1, 64, 8, generator=g).to(DEVICE)
    want = torch.topk(q @ k.transpose(-1, -2), 3, dim=-1).indices.sort(-1).values
    # tiles of 8: a row of 8 maxima, 4 x 8 = 32 candidates
    for max_tiles, max_candidates, fallback in ((8, 32, False), (8, 16, True), (4, 32, True)):
        monkeypatch.setattr(triton_topk, "MAX_TILES", max_tiles)
        monkeypatch.setattr(triton_topk, "MAX_CANDIDATES", max_candidates)
        calls.clear()
        got = triton_topk.topk_select(q, k, None, 3, tile=8)
        assert calls == ([1] if fallback else []), (max_tiles, max_candidates)
        assert torch.equal(got.sort(-1).values, want)


@pytest.mark.triton
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_triton_topk_selection_candidates_the_autotuner_may_pick(monkeypatch):
    """Every gather width / warp count the GPU autotuner may pick for the selection program gives
    torch.topk's keys (run here as fixed settings)."""
    from mnemovision.kernels.attention import triton_topk

    g = torch.Generator().manual_seed(8)
    q, k = torch.randn(1, 1, 6, 40, generator=g).to(DEVICE), torch.randn(1, 1, 500, 40, generator=g).to(DEVICE)
    want = torch.topk(q @ k.transpose(-1, -2), 9, dim=-1).indices.sort(-1).values
    for config in triton_topk._select_tuned.configs:
        monkeypatch.setattr(triton_topk, "_D_CHUNK", config.kwargs["D_CHUNK"])
        monkeypatch.setattr(triton_topk, "SELECT_WARPS", config.num_warps)
        got = triton_topk.topk_select(q, k, None, 9, tile=8)
        assert torch.equal(got.sort(-1).values, want), config


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_triton_autotuned_topk_selection_is_exact(monkeypatch):
    """With the autotuner on (its trials rewrite the same keys), the selection is still exact."""
    from mnemovision.kernels.attention import triton_topk

    monkeypatch.setenv("MNEMOVISION_TRITON_AUTOTUNE", "1")
    g = torch.Generator().manual_seed(9)
    q, k = torch.randn(1, 2, 300, 64, generator=g).cuda(), torch.randn(1, 2, 5000, 64, generator=g).cuda()
    logits = q.double() @ k.double().transpose(-1, -2)
    want = torch.topk(logits, 30, dim=-1).values.sort(-1).values
    for _ in range(2):  # the first call tunes, the second reuses the choice
        got = triton_topk.topk_select(q, k, None, 30)
        assert (got.sort(-1).values.diff(dim=-1) > 0).all(), "30 distinct keys per query"
        # the chosen keys' logits are the 30 largest (up to fp32 rounding where two nearly tie)
        torch.testing.assert_close(logits.gather(-1, got).sort(-1).values, want, rtol=0, atol=1e-4)


@pytest.mark.triton
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
@pytest.mark.parametrize("probes", [1, 2, 8])
def test_triton_topk_search_with_other_probe_counts(probes, monkeypatch):
    """The selection's searches with 1 (bisection), 2 or 8 thresholds counted per step (the default
    is ``SEARCH_PROBES``): torch.topk's keys on random logits with masked keys, and on exact ties
    torch.topk's values with the lowest keys at the k-th value."""
    from mnemovision.kernels.attention import triton_topk

    monkeypatch.setattr(triton_topk, "SEARCH_PROBES", probes)
    g = torch.Generator().manual_seed(21)
    q, k = torch.randn(1, 2, 6, 16, generator=g).to(DEVICE), torch.randn(1, 2, 300, 16, generator=g).to(DEVICE)
    bias = torch.randn(1, 2, 300, generator=g).to(DEVICE)
    bias[..., ::4] = float("-inf")
    got = triton_topk.topk_select(q, k, bias, 12, tile=8)
    want = torch.topk(q @ k.transpose(-1, -2) + bias[..., None, :], 12, dim=-1).indices
    assert torch.equal(got.sort(-1).values, want.sort(-1).values)
    # logits that are consecutive floats (consecutive ints to the search): every threshold it counts
    # sits next to a value, so a range bound off by one loses the k-th largest
    ulps = torch.stack([torch.randperm(300, generator=g) for _ in range(2)])[None].float()
    bias = (1.0 + ulps * 2.0**-23).to(DEVICE)  # 1 + j ulp, each exactly representable
    zeros = torch.zeros(1, 2, 3, 16).to(DEVICE)
    for top_k in (1, 7, 12, 20, 31):
        got = triton_topk.topk_select(zeros, k, bias, top_k, tile=8)
        want = torch.topk(bias, top_k, dim=-1).indices[:, :, None, :].expand(got.shape)
        assert torch.equal(got.sort(-1).values, want.sort(-1).values), top_k
    assert_lowest_keys_win_ties(triton_topk, tile=4)


def assert_lowest_keys_win_ties(triton_topk, tile: int) -> None:
    """Logits with many exact ties (integer-valued, q = 0 so the bias alone decides): the selection
    holds torch.topk's values, and at the k-th value it takes the lowest key ids."""
    g = torch.Generator().manual_seed(11)
    b, h, nq, m, d, top_k = 1, 2, 5, 300, 8, 20
    q = torch.zeros(b, h, nq, d).to(DEVICE)
    k = torch.randn(b, h, m, d, generator=g).to(DEVICE)
    bias = torch.randint(0, 6, (b, h, m), generator=g).float().to(DEVICE)
    got = triton_topk.topk_select(q, k, bias, top_k, tile=tile).cpu()
    logits = bias.cpu()[:, :, None, :].expand(b, h, nq, m)
    want_vals = torch.topk(logits, top_k, dim=-1).values
    assert torch.equal(logits.gather(-1, got).sort(-1).values, want_vals.sort(-1).values)
    kth = want_vals[..., -1:]
    # keys above the k-th value all taken, then ties at it by ascending key id
    order = torch.where(logits > kth, -1, torch.where(logits == kth, torch.arange(m).float(), float(m)))
    want_ids = order.argsort(dim=-1, stable=True)[..., :top_k]
    assert torch.equal(got.sort(-1).values, want_ids.sort(-1).values)


@pytest.mark.triton
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
@pytest.mark.parametrize("tile", [4, 32])
def test_triton_topk_ties_go_to_the_lowest_keys(tile):
    """Exact ties: torch.topk's values, the lowest keys at the k-th value (``assert_lowest_keys_win_ties``)."""
    from mnemovision.kernels.attention import triton_topk

    assert_lowest_keys_win_ties(triton_topk, tile)


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_triton_launch_sizes_follow_the_gpu_rules():
    """The size rules that only a GPU compile would enforce (the interpreter runs any tile): head-dim
    tiles of at least 16 (tl.dot's minimum), value slices of 16 to 128, fp32 products in IEEE
    precision (Triton's default is TF32: 1e-3 errors), float64 lse for float64 oracle tests, and a
    contiguous float32 [B*H, M] bias (the kernels address it as dense rows)."""
    from mnemovision.kernels.attention import triton_sizes

    assert [triton_sizes.block_d(d) for d in (1, 16, 17, 64, 100)] == [16, 16, 32, 64, 128]
    assert [triton_sizes.block_dv(d) for d in (3, 16, 40, 128, 300)] == [16, 16, 64, 128, 128]
    assert [triton_sizes.precision(t) for t in (torch.float32, torch.float64, torch.float16, torch.bfloat16)] == ["ieee", "ieee", "tf32", "tf32"]
    lse = torch.zeros(2, 3)
    assert triton_sizes.lse_out(lse, torch.float64).dtype == torch.float64 and triton_sizes.lse_out(lse, torch.float32) is lse
    assert triton_sizes.lse_out(None, torch.float64) is None
    strided = torch.arange(24.0).reshape(1, 2, 12)[..., ::2]  # [1, 2, 6], stride 2 along M
    for given in (strided, strided.double()):
        has_bias, bias = triton_sizes.kernel_bias(given, 2, 6, lse)
        assert has_bias and bias.dtype == torch.float32 and bias.is_contiguous() and torch.equal(bias, strided.reshape(2, 6))
    assert triton_sizes.kernel_bias(None, 2, 6, lse) == (False, lse)


@pytest.mark.triton
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
@pytest.mark.parametrize("similarity", ["dot", "neg_l2"])
@pytest.mark.parametrize("dv, fused", [(8, True), (8, False), (300, True)])
def test_triton_dense_backward_with_query_splits(similarity, dv, fused, monkeypatch):
    """Many queries, few keys: the key-side backward splits the queries and one launch sums the
    partials of dK, dV and (neg_l2: a key bias) d(bias); gradients match the float64 oracle. With
    the key-side gradients in one kernel (Dv <= FUSED_DV_MAX) and in two (switched off, or Dv past
    the limit: 300 > 256, also more than two value slices)."""
    from mnemovision.kernels.attention import triton_impl

    monkeypatch.setattr(triton_impl, "FUSE_KEY_GRADS", fused)
    fuse = triton_impl._fused_key_grads(dv)
    assert fuse == (fused and dv <= 256)
    b, h, nq, m, d = 1, 2, 200, 15, 16
    cfg = triton_impl._blocks(triton_impl.key_side_width(d, dv))
    splits, _ = triton_impl._query_splits(nq, cfg["BLOCK_M"], math.ceil(m / cfg["BLOCK_N"]) * b * h, DEVICE, 1 if fuse else 2)
    assert splits > 1
    inputs64 = make(b, h, nq, m, d, dv)
    inputs = [t.detach().float().to(DEVICE).requires_grad_(True) for t in inputs64]
    same = [t.detach().float().to(DEVICE).requires_grad_(True) for t in inputs64]
    got_g = grads(memory_attention(*inputs, similarity=similarity, backend="triton"), inputs)
    same_g = grads(memory_attention(*same, similarity=similarity, backend="torch"), same)
    want_g = grads(oracle(*inputs64, similarity=similarity)[0], inputs64)
    for name, a, b_, c in zip("qkv", got_g, same_g, want_g):
        assert_kernel_close(a, b_, c.to(a.device), f"d{name}")


@pytest.mark.triton
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_triton_takes_head_dims_up_to_256_and_names_the_limit():
    """D = 256 (MCNet's head dim) runs on the Triton path and matches the torch path; D = 257 is
    refused with the limit named."""
    g = torch.Generator().manual_seed(11)
    q, k, v = (torch.randn(1, 1, n, e, generator=g).to(DEVICE) for n, e in ((3, 256), (5, 256), (5, 4)))
    got = memory_attention(q, k, v, backend="triton")
    torch.testing.assert_close(got, memory_attention(q, k, v, backend="torch"), rtol=1e-4, atol=1e-5)
    q, k = (torch.randn(1, 1, n, 257, generator=g).to(DEVICE) for n in (3, 5))
    with pytest.raises(ValueError, match=r"the triton backend supports D <= 256, got D = 257"):
        memory_attention(q, k, v, backend="triton")


@pytest.mark.triton
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
@pytest.mark.parametrize("top_k", [None, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_triton_usage_has_the_documented_dtype(top_k, dtype):
    """usage is float32, float64 for float64 inputs (the interpreter's oracle runs), dense and top-k;
    each query spreads a weight of one, so a head's usage sums to Nq."""
    if dtype == torch.float64 and DEVICE != "cpu":
        pytest.skip("float64 runs through the Triton interpreter only")
    g = torch.Generator().manual_seed(12)
    q, k, v = (torch.randn(1, 2, n, 8, generator=g, dtype=dtype).to(DEVICE) for n in (5, 9, 9))
    usage = memory_attention(q, k, v, top_k=top_k, return_usage=True, backend="triton").usage
    assert usage.dtype == dtype and usage.shape == (1, 2, 9)
    torch.testing.assert_close(usage.sum(-1), torch.full((1, 2), 5.0, dtype=dtype, device=DEVICE), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_query_splits_fill_one_wave(monkeypatch):
    """MCNet on an H100 (132 SMs; 32 key blocks of 32, 16384 queries in blocks of 32): the dK kernel
    (2 programs per SM) gets 8 splits, 256 programs resident at once (9 would leave a tail of 24), the
    fused dK + dV kernel (1 per SM) 4, 128 programs; few queries never split past their blocks."""
    from mnemovision.kernels.attention import triton_impl, triton_sizes

    monkeypatch.setattr(triton_sizes, "sm_count", lambda device: 132)
    assert triton_impl._query_splits(16384, 32, 32, None) == (8, 2048)
    assert triton_impl._query_splits(16384, 32, 32, None, per_sm=1) == (4, 4096)
    assert triton_impl._query_splits(40, 32, 1, None) == (2, 32)
    assert triton_impl._query_splits(1620, 64, 507, None) == (1, 1664)
    # 10 query blocks over 8 splits round to 2 blocks a split: 5 splits, none left empty
    assert triton_impl._query_splits(160, 16, 33, None) == (5, 32)
    for nq in (1, 17, 160, 1000):
        for programs in (1, 7, 33, 300):
            splits, chunk = triton_impl._query_splits(nq, 16, programs, None)
            assert chunk % 16 == 0 and (splits - 1) * chunk < nq <= splits * chunk, (nq, programs, splits, chunk)


@pytest.mark.triton
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
@pytest.mark.parametrize("max_tiles,tile", [(16, 8), (8, 16), (4, 32), (1, None)])
def test_triton_topk_readout_fused_and_after_the_selection_fallback(max_tiles, tile, monkeypatch):
    """memory_attention's top-k readout: in the selection program (fused) with each tile size
    ``_tile_size`` may pick (here chosen by the register budget MAX_TILES), and as its own kernel
    after the PyTorch selection fallback (no tile row fits); same output, same gradients as the
    torch backend."""
    from mnemovision.kernels.attention import triton_topk

    monkeypatch.setattr(triton_topk, "MAX_TILES", max_tiles)
    if tile is not None:
        assert triton_topk._tile_size(90, 6) == tile
    q, k, v = make(1, 2, 11, 90, 16, 12, dtype=torch.float32, device=DEVICE)
    got = memory_attention(q, k, v, top_k=6, return_usage=True, backend="triton")
    same = memory_attention(q, k, v, top_k=6, return_usage=True, backend="torch")
    torch.testing.assert_close(got.out, same.out, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got.usage, same.usage, rtol=1e-4, atol=1e-5)
    for a, b_ in zip(grads(got.out, (q, k, v)), grads(same.out, (q, k, v))):
        torch.testing.assert_close(a, b_, rtol=1e-4, atol=1e-5)


@pytest.mark.triton
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
@pytest.mark.parametrize("top_k,max_tiles", [(None, None), (6, None), (6, 1)])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_triton_inference_launches_match_the_autograd_path(top_k, max_tiles, layout, monkeypatch):
    """Without anything to differentiate (``torch.no_grad``, or inputs that need no gradient) the
    Triton launchers skip autograd: the same kernels give bit-identical out, with no graph, and the
    same usage (bit-identical on CPU; top-k usage on a GPU is a scatter-add whose atomics sum in any
    order, so there to 1e-6 relative: first seen on the H100, 2026-11-27).
    Strided inputs (a transposed [B, M, H, D] bank) are copied into the kernels' row layout; top-k
    also after the PyTorch selection fallback (``max_tiles`` 1)."""
    from mnemovision.kernels.attention import triton_topk

    if max_tiles is not None:
        monkeypatch.setattr(triton_topk, "MAX_TILES", max_tiles)
    q, k, v = make(1, 2, 11, 90, 16, 12, dtype=torch.float32, device=DEVICE)
    if layout == "strided":  # [B, H, L, E] views of [B, L, H, E] tensors
        q, k, v = (t.detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_(True) for t in (q, k, v))
        assert not q.is_contiguous()
    args = dict(top_k=top_k, similarity="neg_l2", return_usage=True, backend="triton")
    tracked = memory_attention(q, k, v, **args)
    assert tracked.out.grad_fn is not None
    with torch.no_grad():
        untracked = memory_attention(q, k, v, **args)
    detached = memory_attention(*(t.detach() for t in (q, k, v)), **args)
    for res in (untracked, detached):
        assert res.out.grad_fn is None and not res.out.requires_grad
        assert res.out.shape == tracked.out.shape and res.out.is_contiguous()
        assert torch.equal(res.out, tracked.out.detach())
        if res.usage.is_cuda and top_k is not None:
            torch.testing.assert_close(res.usage, tracked.usage, rtol=1e-6, atol=1e-7)
        else:
            assert torch.equal(res.usage, tracked.usage)
    expected, _ = oracle(*(t.detach().double().cpu() for t in (q, k, v)), top_k=top_k, similarity="neg_l2")
    assert_kernel_close(untracked.out, memory_attention(q.detach(), k.detach(), v.detach(), top_k=top_k, similarity="neg_l2", backend="torch"), expected.to(untracked.out.device), "out")


@pytest.mark.triton
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_triton_dense_inference_without_lse():
    """A dense inference call that returns out alone launches the forward without lse (no buffer,
    no store): the same out, bit for bit, as the autograd path (which keeps lse for its backward)
    and as a call that also asks for usage (which needs lse); the launcher then returns lse None."""
    from mnemovision.kernels.attention import triton_impl

    q, k, v = make(2, 1, 21, 37, 16, 12, dtype=torch.float32, device=DEVICE)
    tracked = memory_attention(q, k, v, similarity="neg_l2", backend="triton")
    with torch.no_grad():
        plain = memory_attention(q, k, v, similarity="neg_l2", backend="triton")
        with_usage = memory_attention(q, k, v, similarity="neg_l2", return_usage=True, backend="triton")
        out, lse = triton_impl.dense_attention(q, k, v, None, 0.25, with_lse=False)
        out_lse, lse_kept = triton_impl.dense_attention(q, k, v, None, 0.25)
    assert torch.equal(plain, tracked.detach()) and torch.equal(plain, with_usage.out)
    assert lse is None and lse_kept is not None and torch.equal(out, out_lse)
    expected = torch.logsumexp(0.25 * q.detach().double() @ k.detach().double().transpose(-1, -2), -1)
    torch.testing.assert_close(lse_kept.double().cpu(), expected.cpu(), rtol=1e-5, atol=1e-5)


@pytest.mark.triton
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
@pytest.mark.parametrize("max_tiles", [None, 1])
def test_triton_topk_inference_without_lse(max_tiles, monkeypatch):
    """The top-k readout's inference calls without usage or extra tokens skip lse too, fused with
    the selection or (``max_tiles`` 1: the PyTorch selection) in the readout kernel alone: the same
    out and idx, bit for bit, as a call that keeps lse, which matches float64."""
    from mnemovision.kernels.attention import triton_impl, triton_topk

    if max_tiles is not None:
        monkeypatch.setattr(triton_topk, "MAX_TILES", max_tiles)
    q, k, v = make(1, 2, 13, 70, 16, 12, dtype=torch.float32, device=DEVICE)
    tracked = memory_attention(q, k, v, top_k=5, backend="triton")
    with torch.no_grad():
        plain = memory_attention(q, k, v, top_k=5, backend="triton")
        out, lse, idx = triton_impl.topk_readout(q, k, v, None, 5, 0.25, with_lse=False)
        out_lse, lse_kept, idx_kept = triton_impl.topk_readout(q, k, v, None, 5, 0.25)
    assert torch.equal(plain, tracked.detach())
    assert lse is None and torch.equal(out, out_lse) and torch.equal(idx, idx_kept)
    logits = 0.25 * q.detach().double() @ k.detach().double().transpose(-1, -2)
    expected = torch.logsumexp(torch.topk(logits, 5, dim=-1).values, -1)
    torch.testing.assert_close(lse_kept.double().cpu(), expected.cpu(), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_triton_topk_tile_size_keeps_the_tile_row_short():
    """Tiles of 8 keys up to rows of 2,048 tiles (M = 16,384), then 16 (vos_T20: M = 32,400), then
    32; past rows of 2,048 at every size, the smallest whose row fits the registers (4,096)."""
    from mnemovision.kernels.attention import triton_topk

    ms = (50, 16384, 16385, 32400, 32768, 32769, 65536, 65537, 131072, 10**6)
    assert [triton_topk._tile_size(m, 30) for m in ms] == [8, 8, 16, 16, 16, 32, 32, 32, 32, 32]
    # a candidate block too large with short rows (1,000 x 16 keys) takes the longer row of tiles of
    # 8 (1,024 x 8 candidates fit); one too large at 8 (1,500 x 8 keys) is too large at every size,
    # and gets the largest (where the selection falls back to PyTorch)
    assert triton_topk._tile_size(32400, 1000) == 8 and triton_topk._tile_size(32400, 1500) == 32


@pytest.mark.triton
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_triton_topk_with_fewer_live_keys_than_k_reads_no_padding():
    """Most keys masked: the selection still returns in-range keys only and the readout matches."""
    q, k, v = make(1, 1, 6, 70, 8, 4, dtype=torch.float32, device=DEVICE)
    mask = torch.ones(1, 70, dtype=torch.bool, device=DEVICE)
    mask[:, [3, 41]] = False
    got = memory_attention(q, k, v, top_k=5, key_padding_mask=mask, backend="triton")
    same = memory_attention(q, k, v, top_k=5, key_padding_mask=mask, backend="torch")
    torch.testing.assert_close(got, same, rtol=1e-4, atol=1e-5)
    for a, b_ in zip(grads(got, (q, k, v)), grads(same, (q, k, v))):
        torch.testing.assert_close(a, b_, rtol=1e-4, atol=1e-5)


@pytest.mark.triton
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_triton_extra_tokens_and_lse_gradient():
    q, k, v = make(1, 2, 13, 21, 16, 8, dtype=torch.float32, device=DEVICE)
    ke, ve = make(1, 2, 9, 9, 16, 8, dtype=torch.float32, device=DEVICE, seed=7)[1:]
    got = memory_attention(q, k, v, top_k=4, extra_q_kv=(ke, ve), backend="triton")
    same = memory_attention(q, k, v, top_k=4, extra_q_kv=(ke, ve), backend="torch")
    expected, _ = oracle(*(t.detach().cpu() for t in (q, k, v)), top_k=4, extra=(ke.detach().cpu(), ve.detach().cpu()))
    assert_kernel_close(got, same, expected.to(got.device), "out")
    for a, b_ in zip(grads(got, (q, k, v, ke, ve)), grads(same, (q, k, v, ke, ve))):
        torch.testing.assert_close(a, b_, rtol=1e-4, atol=1e-5)


@pytest.mark.triton
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
@pytest.mark.parametrize("used", ["out", "lse"])
@pytest.mark.parametrize("readout", ["top-k", "dense"])
def test_triton_gradients_when_one_output_is_unused(used, readout):
    """The dense and the top-k readouts' backward gets None for an output the loss does not use (no
    zeros are materialised): through out alone and through lse alone, the gradients of the PyTorch path."""
    from mnemovision.kernels.attention import triton_impl

    q, k, v = make(1, 2, 11, 37, 16, 8, dtype=torch.float32, device=DEVICE)
    bias = torch.randn(1, 2, 37, generator=torch.Generator().manual_seed(5)).to(DEVICE).requires_grad_(True)

    def loss_grads(backend):  # triton_impl or ref: the same two functions
        out, lse = backend.topk_readout(q, k, v, bias, 5, 0.25)[:2] if readout == "top-k" else backend.dense_attention(q, k, v, bias, 0.25)
        picked = out if used == "out" else lse
        return grads(picked, (q, k, v, bias))

    for got, want in zip(loss_grads(triton_impl), loss_grads(ref)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.triton
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
@pytest.mark.parametrize("top_k", [None, 3])
def test_triton_all_keys_masked_gives_zeros_not_nan(top_k):
    """A batch whose every memory key is masked reads zeros (and finite zero gradients), as the
    PyTorch path does; the other batch is unaffected."""
    q, k, v = make(2, 1, 5, 21, 16, 8, dtype=torch.float32, device=DEVICE)
    mask = torch.zeros(2, 21, dtype=torch.bool, device=DEVICE)
    mask[0] = True
    mask[1, ::3] = True
    got = memory_attention(q, k, v, top_k=top_k, key_padding_mask=mask, backend="triton")
    same = memory_attention(q, k, v, top_k=top_k, key_padding_mask=mask, backend="torch")
    assert torch.equal(got[0], torch.zeros_like(got[0]))
    torch.testing.assert_close(got, same, rtol=1e-4, atol=1e-5)
    for a, b_ in zip(grads(got, (q, k, v)), grads(same, (q, k, v))):
        assert torch.isfinite(a).all() and torch.equal(a[0], torch.zeros_like(a[0]))
        torch.testing.assert_close(a, b_, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("similarity", SIMS)
def test_triton_half_precision_on_gpu(dtype, similarity):
    shape = (2, 2, 200, 333, 64, 96)
    q, k, v = make(*shape, dtype=dtype, device="cuda")
    got = memory_attention(q, k, v, similarity=similarity, backend="triton")
    same = memory_attention(q, k, v, similarity=similarity, backend="torch")
    expected, _ = oracle(*(t.detach().cpu() for t in (q, k, v)), similarity=similarity)
    assert_kernel_close(got, same, expected.cuda(), "out")
    g = torch.randn(got.shape, device="cuda", dtype=dtype)
    for name, a, b_ in zip("qkv", torch.autograd.grad((got * g).sum(), (q, k, v)), torch.autograd.grad((same * g).sum(), (q, k, v))):
        q64 = [t.detach().double().requires_grad_(True) for t in (q, k, v)]
        want = torch.autograd.grad((oracle(*q64, similarity=similarity)[0] * g.double()).sum(), q64)["qkv".index(name)]
        assert_kernel_close(a, b_, want, f"d{name}")


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_triton_topk_half_precision_on_gpu(dtype):
    """Half-precision top-k: the selection agrees with float64's on at least 98% of (query, key)
    picks (rounding reorders near-ties), and where a query's set agrees its output is within the
    half-precision tolerance of the float64 oracle."""
    shape, top_k = (1, 2, 300, 2000, 64, 96), 30
    q, k, v = make(*shape, dtype=dtype, device="cuda")
    got = memory_attention(q, k, v, top_k=top_k, backend="triton")
    q64, k64, v64 = (t.detach().double().cpu() for t in (q, k, v))
    logits = q64 @ k64.transpose(-1, -2) / math.sqrt(shape[4])
    want_idx = torch.topk(logits, top_k, dim=-1).indices
    from mnemovision.kernels.attention import triton_topk

    got_idx = triton_topk.topk_select(q * (1 / math.sqrt(shape[4])), k, torch.zeros(shape[:2] + (shape[3],), device="cuda"), top_k).cpu()
    same_set = (got_idx.sort(-1).values == want_idx.sort(-1).values).all(-1)
    overlap = (got_idx[..., :, None] == want_idx[..., None, :]).any(-1).float().mean()
    assert overlap >= 0.98, f"only {float(overlap):.3f} of the top-k picks agree with float64"
    expected, _ = oracle(q64, k64, v64, top_k=top_k)
    err = (got.double().cpu() - expected).abs().amax(-1)[same_set]
    assert err.numel() > 0 and float(err.max()) < 2 * FLOORS[dtype] * max(1.0, float(expected.abs().max()))


@pytest.mark.parametrize("m,top_k,tile", [(1000, 30, 32), (4096, 7, 16), (333, 5, 4), (50, 30, 32)])
def test_torch_topk_columns_is_exact(m, top_k, tile):
    """The tile-maximum selection of the PyTorch path equals torch.topk's (random values, no ties),
    with -inf columns, a partial last tile, and rows too short for tiles."""
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 9, m, generator=g)
    logits[..., ::7] = float("-inf")
    got = ref.topk_columns(logits, top_k, tile=tile)
    want = torch.topk(logits, top_k, dim=-1).indices
    assert torch.equal(got.sort(-1).values, want.sort(-1).values)


@pytest.mark.gpu
@pytest.mark.triton
def test_triton_autotuned_dense_forward_matches_the_fixed_tiles(monkeypatch):
    """The autotuned dense forward (what benchmarks and users run) against the fixed-tile launch
    that the other GPU tests may use (MNEMOVISION_TRITON_AUTOTUNE=0)."""
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(1, 2, n, 64, generator=g).half().cuda() for n in (300, 700, 700))
    monkeypatch.setenv("MNEMOVISION_TRITON_AUTOTUNE", "0")
    fixed = memory_attention(q, k, v, backend="triton")
    monkeypatch.setenv("MNEMOVISION_TRITON_AUTOTUNE", "1")
    tuned = memory_attention(q, k, v, backend="triton")
    torch.testing.assert_close(tuned, fixed, rtol=2e-3, atol=2e-3)


@pytest.mark.triton
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
@pytest.mark.parametrize("top_k", [None, 5])
def test_triton_autotuned_launches_on_cpu(top_k, autotune_on_cpu):
    """The GPU launch path on CPU: the first call runs the forward's candidates through Triton's
    autotuner (the dense tiles, or the selection's warps and chunks), the second launches the chosen
    (last) one directly; both match the float64 reference."""
    from mnemovision.kernels.attention import triton_topk

    shape = (1, 2, 37, 45, 20, 130)
    for call in range(2):
        inputs, got, _, _, expected, _ = triton_case(shape, torch.float32, "dot", top_k, True)
        mask = torch.zeros(shape[0], shape[3], dtype=torch.bool)
        mask[:, ::4] = True
        _, same = same_precision_reference(inputs, top_k, "dot", mask)
        assert_kernel_close(got.out, same.out, expected, "out")
        if call == 0:
            trials = autotune_on_cpu.calls
            assert trials == len(triton_topk._select_tuned.configs) if top_k else trials > 1
    assert autotune_on_cpu.calls == trials  # no new trials: the choice was reused
