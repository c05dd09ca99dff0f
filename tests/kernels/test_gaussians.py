"""Gaussian rasterizer: the PyTorch path against the brute-force dense oracle (float64), stage
gradchecks, edge cases, and agreement with gsplat's PyTorch reference on the real garden cameras."""

import importlib.util
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mnemovision.kernels.gaussians import rasterize_gaussians, ref

W, H = 37, 29  # not multiples of the 16-pixel tile
# both backends; triton marked (the interpreter's subset) and skipped where it is not installed
BACKENDS = ["torch", pytest.param("triton", marks=[pytest.mark.triton, pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")])]


def scene(n=40, c=3, batch=(), v=1, seed=0, dtype=torch.float64, sh_degree=None):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(*batch, n, 3, generator=g, dtype=dtype) * 0.6 + torch.tensor([0.0, 0.0, 4.0], dtype=dtype)
    quats = torch.randn(*batch, n, 4, generator=g, dtype=dtype)
    scales = torch.rand(*batch, n, 3, generator=g, dtype=dtype) * 0.2 + 0.02
    opac = torch.rand(*batch, n, generator=g, dtype=dtype) * 0.9 + 0.05
    if sh_degree is None:
        colors = torch.rand(*batch, n, c, generator=g, dtype=dtype)
    else:
        colors = torch.randn(*batch, n, (sh_degree + 1) ** 2, 3, generator=g, dtype=dtype) * 0.5
    views, ks = [], []
    for i in range(v):
        angle = 0.15 * i
        rot = torch.tensor([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]], dtype=dtype)
        view = torch.eye(4, dtype=dtype)
        view[:3, :3] = rot
        view[:3, 3] = torch.tensor([0.1 * i, -0.05 * i, 0.2 * i], dtype=dtype)
        views.append(view)
        ks.append(torch.tensor([[40.0 + i, 0, 18.5], [0, 41.0, 14.5], [0, 0, 1]], dtype=dtype))
    viewmats = torch.stack(views).expand(*batch, v, 4, 4).clone()
    Ks = torch.stack(ks).expand(*batch, v, 3, 3).clone()
    return [t.requires_grad_(True) for t in (means, quats, scales, opac, colors)] + [viewmats, Ks]


def dense_render(means, quats, scales, opac, colors, viewmats, Ks, sh_degree=None, backgrounds=None, render_mode="RGB", antialiased=False, width=W, height=H):
    """The oracle for one batch element (no leading batch dims)."""
    cov = ref.quat_scale_to_covar(quats, scales)
    m2, con, dep, rad, comp = ref.project_gaussians(means, cov, viewmats, Ks, width, height, antialiased=antialiased)
    if sh_degree is None:
        values = colors[None].expand(viewmats.shape[0], *colors.shape)
    else:
        centers = torch.linalg.inv(viewmats)[:, :3, 3]
        values = ref.spherical_harmonics(sh_degree, means[None] - centers[:, None], colors[None])
    want_rgb = render_mode.startswith("RGB")
    if not want_rgb:
        values = values[..., :0]
    r, a = ref.composite_dense(m2, con, opac[None] * comp, values, dep, backgrounds if want_rgb else None, rad, width, height, render_depth=render_mode != "RGB")
    if render_mode.endswith("ED"):
        e = r[..., -1:] / a.clamp_min(1e-10)
        r = torch.cat([r[..., :-1], torch.where(a > 0, e, torch.zeros_like(e))], -1)
    return r, a


def check_against_oracle(inputs, width=W, height=H, **kwargs):
    """Render and gradients of every input that needs one (cameras too, when they do) against the
    dense oracle, float64."""
    means, quats, scales, opac, colors, viewmats, Ks = inputs
    r, a, info = rasterize_gaussians(means, quats, scales, opac, colors, viewmats, Ks, width, height, **kwargs)
    batch = means.shape[:-2]
    flat = [t.reshape(-1, *t.shape[len(batch):]) for t in (means, quats, scales, opac, colors, viewmats, Ks)]
    bgs = kwargs.get("backgrounds")
    outs = [
        dense_render(*(t[i] for t in flat), sh_degree=kwargs.get("sh_degree"), render_mode=kwargs.get("render_mode", "RGB"),
                     backgrounds=None if bgs is None else bgs.reshape(-1, *bgs.shape[len(batch):])[i], antialiased=kwargs.get("antialiased", False),
                     width=width, height=height)
        for i in range(flat[0].shape[0])
    ]
    rd = torch.stack([o[0] for o in outs]).reshape(r.shape)
    ad = torch.stack([o[1] for o in outs]).reshape(a.shape)
    torch.testing.assert_close(r, rd, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(a, ad, rtol=1e-10, atol=1e-10)
    g = torch.randn(r.shape, generator=torch.Generator().manual_seed(5), dtype=r.dtype)
    ga = torch.randn(a.shape, generator=torch.Generator().manual_seed(6), dtype=r.dtype)
    named = dict(means=means, quats=quats, scales=scales, opacities=opac, colors=colors, backgrounds=bgs, viewmats=viewmats, Ks=Ks)
    named = {k: t for k, t in named.items() if t is not None and t.requires_grad}
    got = torch.autograd.grad((r * g).sum() + (a * ga).sum(), list(named.values()), allow_unused=True)
    dense_loss = (rd * g).sum() + (ad * ga).sum()  # no graph when the oracle sees no Gaussian
    want = torch.autograd.grad(dense_loss, list(named.values()), allow_unused=True) if dense_loss.requires_grad else [None] * len(named)
    for (name, t), x, y in zip(named.items(), got, want):
        x, y = (torch.zeros_like(t) if z is None else z for z in (x, y))
        torch.testing.assert_close(x, y, rtol=1e-8, atol=1e-10, msg=lambda m, name=name: f"d{name}: {m}")
    return r, a, info


def random_scene(seed):
    """A scene drawn at random for the oracle: (inputs, width, height, rasterize_gaussians kwargs).
    Sizes from one pixel to several tiles, 1 to 300 Gaussians (crowded enough for lists longer
    than a depth block and for pixels to stop early), flat and fully opaque ones, wide and narrow
    fields of view, one or two views, SH or plain colours, every render mode, antialiasing,
    backgrounds, cameras that need gradients and tile sizes other than 16, each sometimes."""
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    dt = torch.float64
    n, width, height, v = int(rng.choice([1, 5, 30, 120, 300])), int(rng.integers(1, 71)), int(rng.integers(1, 51)), int(rng.choice([1, 2]))
    means = torch.randn(n, 3, generator=g, dtype=dt) * float(rng.choice([0.2, 0.6, 2.0]))
    means[:, 2] += float(rng.choice([1.0, 4.0, 10.0]))
    quats = torch.randn(n, 4, generator=g, dtype=dt)
    scales = torch.rand(n, 3, generator=g, dtype=dt) * float(rng.choice([0.02, 0.2, 1.0, 3.0])) + 1e-3
    if rng.random() < 0.3:
        scales[:, int(rng.integers(3))] = 1e-6  # flat
    opac = torch.rand(n, generator=g, dtype=dt) * float(rng.choice([0.5, 0.99, 1.0]))
    if rng.random() < 0.3:
        opac[: n // 2] = 1.0  # alpha clamped at 0.99: pixels stop early
    sh_degree = [None, None, 0, 1, 3][int(rng.integers(5))]
    if sh_degree is None:
        colors = torch.rand(n, int(rng.choice([1, 3, 8, 9, 33])), generator=g, dtype=dt)
    else:
        colors = torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g, dtype=dt) * 0.5
    viewmats, Ks = torch.eye(4, dtype=dt).repeat(v, 1, 1), torch.zeros(v, 3, 3, dtype=dt)
    for i in range(v):
        angle = float(rng.uniform(-0.5, 0.5))
        viewmats[i, :3, :3] = torch.tensor([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]], dtype=dt)
        viewmats[i, :3, 3] = torch.randn(3, generator=g, dtype=dt) * 0.2
        focal = float(rng.choice([0.5, 1.0, 3.0])) * max(width, height)
        Ks[i] = torch.tensor([[focal, 0, width / 2 + rng.uniform(-3, 3)], [0, focal * rng.uniform(0.8, 1.2), height / 2], [0, 0, 1]], dtype=dt)
    cameras_grad = rng.random() < 0.25
    inputs = [t.requires_grad_(True) for t in (means, quats, scales, opac, colors)] + [viewmats.requires_grad_(cameras_grad), Ks.requires_grad_(cameras_grad)]
    kwargs = {"render_mode": str(rng.choice(["RGB", "RGB", "D", "ED", "RGB+D", "RGB+ED"])), "antialiased": bool(rng.random() < 0.3), "sh_degree": sh_degree}
    kwargs["tile_size"] = int(rng.choice([16, 16, 16, 1, 4, 8, 13, 32]))  # 16 and 32: composited as 8x8 sub-tiles
    if rng.random() < 0.5:
        kwargs["backgrounds"] = torch.rand(v, 3 if sh_degree is not None else colors.shape[-1], generator=g, dtype=dt).requires_grad_(True)
    return inputs, width, height, kwargs


@pytest.mark.parametrize("seed", range(150))
def test_random_scenes_match_the_dense_oracle(seed):
    """Drawn scenes (``random_scene``) against the dense oracle: render and every gradient, float64.
    Fuzzing this way (2,500 scenes) found that a 32-bit depth key tied float64 depths."""
    inputs, width, height, kwargs = random_scene(seed)
    check_against_oracle(inputs, width=width, height=height, **kwargs)


@pytest.mark.parametrize("seed", range(20))
def test_random_scenes_in_a_batch_match_the_dense_oracle(seed):
    """A drawn scene batched with a moved and recoloured copy of itself ([2, ...] inputs): each
    batch element against the oracle, render and gradients."""
    inputs, width, height, kwargs = random_scene(seed)
    g = torch.Generator().manual_seed(seed)
    other = [t.detach().clone() for t in inputs]
    other[0] += torch.randn(other[0].shape, generator=g, dtype=other[0].dtype) * 0.1
    other[4] = torch.rand(other[4].shape, generator=g, dtype=other[4].dtype)
    batched = [torch.stack([a.detach(), b]).requires_grad_(a.requires_grad) for a, b in zip(inputs, other)]
    if "backgrounds" in kwargs:
        kwargs["backgrounds"] = torch.stack([kwargs["backgrounds"].detach()] * 2).requires_grad_(True)
    check_against_oracle(batched, width=width, height=height, **kwargs)


@pytest.mark.parametrize("channels", [1, 3, 32, 160, 512])  # 512: the most one pass takes
def test_channels_match_the_dense_oracle(channels):
    check_against_oracle(scene(c=channels))


@pytest.mark.parametrize("render_mode", ["RGB", "D", "ED", "RGB+D", "RGB+ED"])
def test_render_modes_match_the_dense_oracle(render_mode):
    r, _, _ = check_against_oracle(scene(v=2), render_mode=render_mode)
    assert r.shape[-1] == {"RGB": 3, "D": 1, "ED": 1, "RGB+D": 4, "RGB+ED": 4}[render_mode]


@pytest.mark.parametrize("batch, v", [((), 1), ((2,), 2), ((1, 2), 1)])
def test_batch_dims_and_views(batch, v):
    r, a, info = check_against_oracle(scene(batch=batch, v=v, n=25))
    assert r.shape == (*batch, v, H, W, 3) and a.shape == (*batch, v, H, W, 1)
    assert info["radii"].shape == (*batch, v, 25, 2)


@pytest.mark.parametrize("sh_degree", [0, 1, 2, 3])
def test_spherical_harmonics_colours(sh_degree):
    check_against_oracle(scene(v=2, sh_degree=sh_degree), sh_degree=sh_degree)


def test_backgrounds_and_antialiasing():
    inputs = scene(v=2, c=4)
    bg = torch.rand(2, 4, dtype=torch.float64, requires_grad=True)
    check_against_oracle(inputs, backgrounds=bg, antialiased=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_depth_order_at_the_inputs_precision_with_ties_by_index(dtype):
    """Overlapping Gaussians whose depths differ by less than float32 resolves (float64: must still
    go nearest first) or are equal (by index, as the oracle's stable sort). Found by fuzzing: a
    32-bit depth key tied the first pair and an unstable sort swapped it (render off by 1e-2)."""
    means, quats, scales, opac, colors, viewmats, Ks = (t.detach() for t in scene(n=6, c=3, seed=3))
    z = 4.0 + torch.tensor([1e-7, 0.0, 2.0, 2.0, 2.0, 3.0], dtype=torch.float64)  # 1e-7 < float32's 4.8e-7 ulp at 4
    means = torch.cat([torch.zeros(6, 2, dtype=torch.float64) + 0.1 * torch.arange(6.0, dtype=torch.float64)[:, None] / 6, z[:, None]], -1)
    scales, opac = torch.full_like(scales, 0.3), torch.full_like(opac, 0.7)
    inputs = [t.to(dtype).requires_grad_(True) for t in (means, quats, scales, opac, colors)] + [viewmats.to(dtype), Ks.to(dtype)]
    if dtype == torch.float64:
        check_against_oracle(inputs)
    covars = ref.quat_scale_to_covar(inputs[1].detach(), inputs[2].detach())
    m2, _, depths, radii, _ = ref.project_gaussians(inputs[0].detach(), covars, inputs[5], inputs[6], W, H)
    keys, ids, offsets = ref.isect_tiles(m2, radii, depths, W, H)
    first = ids[offsets[int(keys[0])]:offsets[int(keys[0]) + 1]].tolist()  # one tile's list
    tied = [i for i in first if i in (0, 1)]
    assert tied == ([1, 0] if dtype == torch.float64 else [0, 1])  # float32 rounds both depths to 4.0
    assert [i for i in first if i in (2, 3, 4)] == [2, 3, 4]


@pytest.mark.parametrize("backend", BACKENDS)
def test_near_and_far_planes_cull_by_camera_depth(backend):
    """Gaussians at camera depths outside (near, far) are culled (radii 0, not rendered): the render
    with near=3.8 and far=4.3 equals the render of the others alone, and more than one Gaussian falls
    on each side."""
    device = DEVICE if backend == "triton" else "cpu"  # on a GPU machine the Triton path takes CUDA tensors
    means, quats, scales, opac, colors, viewmats, Ks = [t.detach().to(device) for t in scene(n=40)]
    z = means[:, 2]  # the camera sits at the origin, looking down +z
    outside = (z <= 3.8) | (z >= 4.3)
    assert int((z <= 3.8).sum()) > 1 and int((z >= 4.3).sum()) > 1 and int((~outside).sum()) > 1
    r, a, info = rasterize_gaussians(means, quats, scales, opac, colors, viewmats, Ks, W, H, near=3.8, far=4.3, backend=backend)
    assert not info["radii"][0, outside].any()
    kept = ~outside
    r_kept, a_kept, _ = rasterize_gaussians(means[kept], quats[kept], scales[kept], opac[kept], colors[kept], viewmats, Ks, W, H, backend=backend)
    tol = 1e-12 if backend == "torch" else 1e-6  # triton composites in float32
    torch.testing.assert_close(r, r_kept, rtol=0, atol=tol)
    torch.testing.assert_close(a, a_kept, rtol=0, atol=tol)


def test_edge_cases_give_finite_output():
    means, quats, scales, opac, colors, viewmats, Ks = scene(n=6)
    with torch.no_grad():
        means[0] = torch.tensor([0.0, 0.0, -3.0])  # behind the camera
        means[1] = torch.tensor([50.0, 0.0, 4.0])  # far outside the frustum
        scales[2] = 0.0  # degenerate
        opac[3] = 0.0  # transparent
    r, a, info = rasterize_gaussians(means, quats, scales, opac, colors, viewmats, Ks, W, H)
    assert torch.isfinite(r).all() and torch.isfinite(a).all()
    assert "visible" not in info and torch.equal(info.get("visible"), (info["radii"] > 0).all(-1))  # computed on first read
    assert info.get("no such key", 7) == 7
    assert not info["visible"][0, 0] and not info["visible"][0, 1]
    assert info["visible_ids"].shape[1] == 2 and not (info["visible_ids"][:, 1] < 2).any()
    grads = torch.autograd.grad(r.sum() + a.sum(), (means, quats, scales, opac, colors))
    assert all(torch.isfinite(g).all() for g in grads)
    # single pixel image and an empty scene
    r1, a1, _ = rasterize_gaussians(means, quats, scales, opac, colors, viewmats, Ks, 1, 1)
    assert r1.shape == (1, 1, 1, 3) and torch.isfinite(r1).all()
    empty = [t[:0] for t in (means, quats, scales, opac, colors)]
    bg = torch.tensor([[0.2, 0.4, 0.6]], dtype=torch.float64)
    r0, a0, info0 = rasterize_gaussians(*empty, viewmats, Ks, W, H, backgrounds=bg)
    assert info0["n_isects"] == 0 and torch.all(a0 == 0)
    torch.testing.assert_close(r0, bg.view(1, 1, 1, 3).expand(1, H, W, 3))


@pytest.mark.parametrize("tile_size", [16, 8])
def test_torch_path_drops_tile_entries_no_pixel_can_see(tile_size, monkeypatch):
    """Faint Gaussians (opacity 0.01: alpha reaches 1/255 only near their centres) list tiles inside
    their 3-sigma radii where no pixel centre reaches 1/255; the PyTorch path drops those entries
    (``ref.drop_unseen``: info's n_isects counts what is composited) and renders the same, to
    float64 rounding, as compositing every listed entry; info reports the tile size used."""
    means, quats, scales, opac, colors, viewmats, Ks = scene(n=40)
    faint = torch.where(torch.arange(40) % 2 == 0, opac.detach(), torch.full((40,), 0.01, dtype=torch.float64))
    r, a, info = rasterize_gaussians(means, quats, scales, faint, colors, viewmats, Ks, W, H, tile_size=tile_size, backend="torch")
    assert info["tile_size"] == tile_size
    monkeypatch.setattr(ref, "drop_unseen", lambda keys, ids, *args, **kwargs: (keys, ids, ref._tile_offsets(keys, args[3] * args[4])))
    r_all, a_all, info_all = rasterize_gaussians(means, quats, scales, faint, colors, viewmats, Ks, W, H, tile_size=tile_size, backend="torch")
    assert info["n_isects"] < 0.9 * info_all["n_isects"], (info["n_isects"], info_all["n_isects"])
    # the same up to rounding: the compositor's blocks of Gaussians fall differently on shorter lists
    torch.testing.assert_close(r, r_all, rtol=0, atol=1e-12)
    torch.testing.assert_close(a, a_all, rtol=0, atol=1e-12)


def axis_layers(depths, scale, opacities, colors):
    """Gaussians on the optical axis of ``scene``'s cameras (the image centre) at ``depths``, with
    identity rotations and the same ``scale`` [3]: float64 (means, quats, scales, opacities, colors)
    for the given opacities [n] and colors [n, C]."""
    n = len(depths)
    means = torch.tensor([[0.0, 0.0, z] for z in depths], dtype=torch.float64)
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * n, dtype=torch.float64)
    scales = torch.tensor([scale] * n, dtype=torch.float64)
    return means, quats, scales, torch.as_tensor(opacities, dtype=torch.float64), colors


def test_early_termination_and_alpha_clamp():
    """Ten identical opaque Gaussians stacked in depth: alpha clamps at 0.99, and compositing stops
    before the transmittance drops below 1e-4, so the third layer onward adds nothing."""
    n = 10
    colors = torch.zeros(n, 3, dtype=torch.float64)
    colors[0, 0], colors[1, 1], colors[2:, 2] = 1.0, 1.0, 1.0
    means, quats, scales, opac, colors = axis_layers([4.0 + 0.1 * i for i in range(n)], [0.5] * 3, [1.0] * n, colors)
    viewmats, Ks = scene()[5:]
    r, a, _ = rasterize_gaussians(means, quats, scales, opac, colors, viewmats, Ks, W, H)
    centre = r[0, 14, 18]
    torch.testing.assert_close(centre, torch.tensor([0.99, 0.0099, 0.0], dtype=torch.float64))  # blue layers are cut
    assert a[0, 14, 18, 0].item() == pytest.approx(1 - 0.01 * 0.01)


def test_backward_walks_only_what_the_forward_reached(monkeypatch):
    """Depth blocks of 3 entries over wide, nearly opaque Gaussians: the backward walks each tile's
    list only up to the block in which its last pixel stopped (the forward's ``walked``), some
    tiles short of their lists' ends, and the render and all gradients still match the dense oracle."""
    layout = ref._chunk_layout
    monkeypatch.setattr(ref, "_chunk_layout", lambda *args: SimpleNamespace(**{**vars(layout(*args)), "block": 3}))
    composite_tiles, short = ref.composite_tiles, []

    def spy(tile_ids, offsets, lengths, *args):
        out, trans, walked = composite_tiles(tile_ids, offsets, lengths, *args)
        short.append(int((walked < lengths[tile_ids]).sum()))
        assert bool((walked <= lengths[tile_ids]).all()) and bool((walked > 0).all())
        return out, trans, walked

    monkeypatch.setattr(ref, "composite_tiles", spy)
    inputs = scene(n=80, v=2)
    with torch.no_grad():
        inputs[2].mul_(3.0)
        inputs[3].clamp_(min=0.95)
    check_against_oracle(inputs, backend="torch", render_mode="RGB+D")
    assert sum(short) > 0, "some tiles stopped before their lists ended"


def test_tile_chunks_cover_every_tile_within_the_budget():
    """The PyTorch compositor's chunks: every non-empty tile once, shortest lists first; a chunk
    holds at most ``budget`` elements a step (tiles x min(block, longest list) x pixels) unless it
    is one tile, and could not have taken the next tile."""
    g = torch.Generator().manual_seed(3)
    lengths = torch.randint(0, 300, (60,), generator=g)
    lengths[::7] = 0
    budget, block, pixels = 1 << 15, 64, 256
    chunks = ref._tile_chunks(lengths, torch.nonzero(lengths).squeeze(-1), budget, block, pixels)
    walked = torch.cat(chunks)
    assert sorted(walked.tolist()) == torch.nonzero(lengths).squeeze(-1).tolist()
    assert torch.equal(lengths[walked], lengths[walked].sort().values)
    cost = [len(c) * min(block, int(lengths[c].max())) * pixels for c in chunks]
    assert all(k <= budget or len(c) == 1 for k, c in zip(cost, chunks))
    for c, after in zip(chunks, chunks[1:]):
        assert (len(c) + 1) * min(block, int(lengths[after[0]])) * pixels > budget
    assert 1 < len(chunks) < len(walked)


def test_chunking_does_not_change_the_render(monkeypatch):
    """Each tile alone (the smallest chunks) and the default chunks give the same render and
    gradients (float64; only the order of the gradient sums differs)."""
    inputs = scene(n=60, v=2)

    def run():
        r, a, _ = rasterize_gaussians(*inputs, W, H, render_mode="RGB+D", backend="torch")
        gr = torch.randn(r.shape, generator=torch.Generator().manual_seed(1), dtype=r.dtype)
        return [r, a, *torch.autograd.grad((r * gr).sum() + a.sum(), inputs[:5])]

    default = run()
    whole = ref._tile_chunks
    monkeypatch.setattr(ref, "_tile_chunks", lambda lengths, tile_ids, budget, block, pixels: whole(lengths, tile_ids, 1, block, pixels))
    assert len(ref._chunks(torch.tensor([5, 4, 0, 11]), {"chunk_elems": 1 << 17, "block": 64, "tile_size": 16})) == 3
    for x, y in zip(run(), default):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_means2d_gradient_and_absgrad(backend):
    """Unbatched inputs: info's means2d is the projection's own output (no reshape in between), and
    its gradient is there after backward, bounded by the absolute gradient."""
    inputs = scene(n=20)
    if backend == "triton":
        inputs = [t.to(DEVICE) for t in inputs]  # on a GPU machine the Triton path takes CUDA tensors
    means, quats, scales, opac, colors, viewmats, Ks = inputs
    r, a, info = rasterize_gaussians(means, quats, scales, opac, colors, viewmats, Ks, W, H, absgrad=True, backend=backend)
    (r.sum() + a.sum()).backward()
    grad, absgrad = info["means2d"].grad, info["absgrad"].value
    assert grad is not None and absgrad.shape == grad.shape == (1, 20, 2)
    assert torch.all(absgrad >= grad.abs() - 1e-12)  # a sum of absolute values bounds the absolute sum
    visible = info["visible"][0]
    assert torch.all(absgrad[0, visible].sum(-1) > 0) and torch.all(absgrad[0, ~visible] == 0)


def per_pixel_absgrad(m2, conics, opac, values, depths, radii, g_render, g_alpha):
    """The oracle of absgrad for one view (m2 [N, 2], conics [N, 3], opac, depths [N], values
    [N, C], radii [N, 2]; g_render [H, W, C], g_alpha [H, W, 1] the output gradients): every pixel
    composites its own copy of the 2-D means, so autograd gives each pixel's dL/d mean2d apart,
    and absgrad is the sum of their absolute values [N, 2]."""
    px = (torch.arange(W, dtype=m2.dtype) + 0.5).repeat(H)
    py = (torch.arange(H, dtype=m2.dtype) + 0.5).repeat_interleave(W)
    visible = torch.nonzero((radii[:, 0] > 0) & (radii[:, 1] > 0)).squeeze(-1)
    idx = visible[torch.argsort(depths[visible], stable=True)]
    copies = m2[idx].detach()[None].repeat(H * W, 1, 1).requires_grad_(True)  # [P, K, 2]
    dx, dy = px[:, None] - copies[..., 0], py[:, None] - copies[..., 1]
    con = conics[idx]
    sigma = 0.5 * (con[:, 0] * dx * dx + con[:, 2] * dy * dy) + con[:, 1] * dx * dy
    alpha = torch.clamp_max(opac[idx] * torch.exp(-sigma), ref.ALPHA_MAX)
    alpha = torch.where((sigma >= 0) & (alpha >= ref.ALPHA_MIN), alpha, 0.0)
    t_after = torch.cumprod(1.0 - alpha, -1)
    keep = t_after >= ref.T_MIN
    weights = torch.where(keep, alpha * t_after / (1.0 - alpha), 0.0)
    t_final = torch.where(keep, t_after, torch.ones_like(t_after)).amin(-1)
    loss = ((weights @ values[idx]) * g_render.reshape(H * W, -1)).sum() + ((1.0 - t_final) * g_alpha.reshape(-1)).sum()
    (per_pixel,) = torch.autograd.grad(loss, copies)
    return torch.zeros_like(m2).index_copy_(0, idx, per_pixel.abs().sum(0))


def test_absgrad_matches_a_per_pixel_oracle():
    """absgrad of the PyTorch path against sum_pixels |dL/d mean2d| computed pixel by pixel (float64).
    Gaussians spread over several tiles, some of them large (many pixels of opposite sign)."""
    means, quats, scales, opac, colors, viewmats, Ks = scene(n=24, c=3, seed=11)
    r, a, info = rasterize_gaussians(means, quats, scales, opac, colors, viewmats, Ks, W, H, absgrad=True, backend="torch")
    g = torch.Generator().manual_seed(2)
    g_render, g_alpha = torch.randn(r.shape, generator=g, dtype=r.dtype), torch.randn(a.shape, generator=g, dtype=r.dtype)
    ((r * g_render).sum() + (a * g_alpha).sum()).backward()
    with torch.no_grad():
        m2, conics, depths, radii, _ = ref.project_gaussians(means, ref.quat_scale_to_covar(quats, scales), viewmats, Ks, W, H)
    want = per_pixel_absgrad(m2[0], conics[0], opac, colors, depths[0], radii[0], g_render[0], g_alpha[0])
    assert int((want.sum(-1) > 0).sum()) >= 10
    got = info["absgrad"].value[0]
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12 * float(want.abs().max()))
    assert float((got - info["means2d"].grad[0].abs()).max()) > 1e-3 * float(want.abs().max())  # signs do cancel here


@pytest.mark.triton
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_triton_refuses_tiles_other_than_16():
    """The Triton compositor's tiles are 16x16 (its kernels are compiled for them): another
    tile_size is refused by name rather than rendered wrong."""
    inputs = [t.to(DEVICE) for t in scene(n=4)]
    with pytest.raises(ValueError, match="backend='triton' composites 16x16 tiles, got tile_size=8"):
        rasterize_gaussians(*inputs, W, H, tile_size=8, backend="triton")


@pytest.mark.triton
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
@pytest.mark.parametrize("channels, sequential", [(3, False), (3, True), (40, False)])
def test_triton_absgrad_matches_torch(channels, sequential, monkeypatch):
    """The absolute 2-D mean gradient (sum over pixels of |dL/d mean2d|) of each compositor path
    (batched small C, one Gaussian at a time, the wide passes) equals the PyTorch path's."""
    from mnemovision.kernels.gaussians import triton_impl

    monkeypatch.setattr(triton_impl, "SEQUENTIAL_SMALL_C", sequential)

    def absgrad(backend):
        inputs = [t.to(DEVICE if backend == "triton" else "cpu") for t in scene(n=30, c=channels)]
        r, a, info = rasterize_gaussians(*inputs, W, H, absgrad=True, backend=backend)
        (r.square().sum() + a.sum()).backward()
        return info["absgrad"].value.double().cpu()

    want = absgrad("torch")
    torch.testing.assert_close(absgrad("triton"), want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(render_mode="RGBD"), "render_mode"),
        (dict(sh_degree=4), "sh_degree"),
        (dict(width=0), "width"),
        (dict(backgrounds=torch.zeros(2, 3, dtype=torch.float64)), "backgrounds"),
        (dict(backend="vulkan"), "backend"),
        # found by drawing bad values per argument: these crashed inside a stage or were accepted
        (dict(width=True), "width and height must be positive ints, got True"),
        (dict(sh_degree="2"), "sh_degree must be an int in 0..3, got '2'"),
        (dict(tile_size=0), "tile_size must be a positive int, got 0"),
        (dict(tile_size=-3), "tile_size must be a positive int, got -3"),
        (dict(tile_size=7.5), "tile_size must be a positive int, got 7.5"),
        (dict(near=0.0), "0 < near < far"),
        (dict(near=5.0, far=1.0), "0 < near < far"),
        (dict(near=float("nan")), "0 < near < far"),
        (dict(backgrounds=torch.zeros(1, 3, dtype=torch.float32)), "share one dtype"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    means, quats, scales, opac, colors, viewmats, Ks = scene(n=4)
    width = kwargs.pop("width", W)
    with pytest.raises(ValueError, match=message):
        rasterize_gaussians(means, quats, scales, opac, colors, viewmats, Ks, width, H, **kwargs)


def test_numpy_integer_sizes_render_like_python_ints():
    inputs = scene(n=4)
    want, _, _ = rasterize_gaussians(*inputs, W, H)
    got, _, _ = rasterize_gaussians(*inputs, np.int64(W), np.int32(H))
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_bad_shapes_and_dtypes_are_named():
    means, quats, scales, opac, colors, viewmats, Ks = scene(n=4)
    with pytest.raises(ValueError, match=r"quats must have shape \[4, 4\], got \(4, 3\)"):
        rasterize_gaussians(means, quats[:, :3], scales, opac, colors, viewmats, Ks, W, H)
    with pytest.raises(ValueError, match=r"quats must be floating point \[4, 4\], got torch.int64"):
        rasterize_gaussians(means, quats.long(), scales, opac, colors, viewmats, Ks, W, H)
    with pytest.raises(ValueError, match="opacities"):
        rasterize_gaussians(means, quats, scales, opac[:3], colors, viewmats, Ks, W, H)
    with pytest.raises(ValueError, match="Ks"):
        rasterize_gaussians(means, quats, scales, opac, colors, viewmats, Ks[..., :2, :], W, H)
    with pytest.raises(ValueError, match="dtype"):
        rasterize_gaussians(means.float(), quats, scales, opac, colors, viewmats, Ks, W, H)
    with pytest.raises(ValueError, match="colors must have 1..512"):
        rasterize_gaussians(means, quats, scales, opac, torch.rand(4, 513, dtype=torch.float64), viewmats, Ks, W, H)


@pytest.mark.parametrize("change, message", [
    (dict(quats=np.zeros((4, 4))), r"quats must be a torch.Tensor \[4, 4\], got ndarray"),
    (dict(scales=torch.ones(4, 2, dtype=torch.float64)), r"scales must have shape \[4, 3\], got \(4, 2\)"),
    (dict(height=0), "width and height must be positive ints, got 37 x 0"),
    (dict(height=29.0), "width and height must be positive ints, got 37 x 29.0"),
    (dict(sh_degree=-1), "sh_degree must be an int in 0..3, got -1"),
    (dict(sh_degree=2, colors=torch.zeros(4, 4, 3, dtype=torch.float64)), "colors has 4 SH coefficients; sh_degree=2 needs 9"),
    (dict(colors=torch.zeros(4, 0, dtype=torch.float64)), "colors must have 1..512 channels, got 0"),
])
def test_each_input_check_names_the_argument_and_what_it_expected(change, message):
    means, quats, scales, opac, colors, viewmats, Ks = scene(n=4)
    args = {"quats": quats, "scales": scales, "colors": colors, "height": H, **change}
    with pytest.raises(ValueError, match=message):
        rasterize_gaussians(means, args["quats"], args["scales"], opac, args["colors"], viewmats, Ks, W, args["height"], sh_degree=change.get("sh_degree"))


# ---------------------------------------------------------------------------------------------
# stages: float64 gradcheck


def test_stage_gradchecks():
    g = torch.Generator().manual_seed(1)
    quats = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    scales = (torch.rand(5, 3, generator=g, dtype=torch.float64) + 0.1).requires_grad_(True)
    assert torch.autograd.gradcheck(ref.quat_scale_to_covar, (quats, scales))
    means = (torch.randn(5, 3, generator=g, dtype=torch.float64) * 0.3 + torch.tensor([0, 0, 3.0], dtype=torch.float64)).requires_grad_(True)
    covars = ref.quat_scale_to_covar(quats, scales).detach().requires_grad_(True)
    viewmats, Ks = scene()[5:]

    def proj(m, c):
        m2, con, dep, _, comp = ref.project_gaussians(m, c, viewmats, Ks, W, H, antialiased=True)
        return m2, con, dep, comp

    assert torch.autograd.gradcheck(proj, (means, covars))
    dirs = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    coeffs = torch.randn(5, 16, 3, generator=g, dtype=torch.float64, requires_grad=True)
    for degree in (1, 3):  # degree 1 of 16 coefficients: the unused ones get zero gradients
        assert torch.autograd.gradcheck(lambda d, c: ref.spherical_harmonics(degree, d, c), (dirs, coeffs))


@pytest.mark.parametrize("antialiased", [False, True])
def test_analytic_projection_matches_autograd(antialiased):
    """The closed-form projection backward (``analytic``, the PyTorch path's when the cameras need
    no gradient) gives ``ref``'s outputs exactly and autograd's gradients into means, quats and
    scales (float64, two views), with Gaussians off screen (the clamped Jacobian), behind the camera
    and on the near plane among them; gradcheck passes."""
    from mnemovision.kernels.gaussians import analytic

    means, quats, scales, _, _, viewmats, Ks = scene(n=24, v=2)
    extra = torch.tensor([[40.0, 0, 3], [0, -35.0, 3], [0, 0, -3], [0, 0, 0.005]], dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    leaves = [
        torch.cat([means.detach(), extra]).requires_grad_(True),
        torch.cat([quats.detach(), torch.randn(4, 4, generator=g, dtype=torch.float64)]).requires_grad_(True),
        torch.cat([scales.detach(), torch.rand(4, 3, generator=g, dtype=torch.float64) * 0.3]).requires_grad_(True),
    ]
    reference = ref.project_gaussians(leaves[0], ref.quat_scale_to_covar(*leaves[1:]), viewmats, Ks, W, H, antialiased=antialiased)
    closed = analytic.project_gaussians(*leaves, viewmats, Ks, W, H, antialiased=antialiased)
    for x, y in zip(closed, reference):
        assert torch.equal(x, y)
    assert not bool(ref.projection_terms(leaves[0], ref.quat_scale_to_covar(*leaves[1:]), viewmats, Ks, W, H)[1].x_free.all())
    weights = [torch.randn(reference[i].shape, generator=g, dtype=torch.float64) for i in (0, 1, 2, 4)]

    def loss(outputs):
        return sum((outputs[i] * w).sum() for i, w in zip((0, 1, 2, 4), weights))

    for x, y in zip(torch.autograd.grad(loss(closed), leaves), torch.autograd.grad(loss(reference), leaves)):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)

    def outputs(*args):
        return tuple(o for i, o in enumerate(analytic.project_gaussians(*args, viewmats, Ks, W, H, antialiased=antialiased)) if i != 3)

    assert torch.autograd.gradcheck(outputs, tuple(leaves))


@pytest.mark.parametrize("antialiased", [False, True])
def test_analytic_projection_of_degenerate_gaussians(antialiased):
    """Gaussians with one or three zero scales (a rank-1 or zero covariance: the determinant before
    the low-pass is 0 or a rounding either side of it) and a zero quaternion: the closed-form
    gradients are finite and equal autograd's (which are finite here too) to 1e-6 relative."""
    from mnemovision.kernels.gaussians import analytic

    means, quats, scales, _, _, viewmats, Ks = scene(n=24, v=2)
    scales, quats = scales.detach().clone(), quats.detach().clone()
    scales[:16, 1:] = 0.0  # 32 rank-1 projections: 14 of their determinants round below 0 here
    scales[16:18] = 0.0
    quats[18] = 0.0
    leaves = [means.detach().clone().requires_grad_(True), quats.requires_grad_(True), scales.requires_grad_(True)]
    det_orig = ref.projection_terms(leaves[0], ref.quat_scale_to_covar(*leaves[1:]), viewmats, Ks, W, H)[1].det_orig
    assert bool((det_orig[:, :16] < 0).any()) and bool((det_orig[:, 16:18] == 0).all())
    reference = ref.project_gaussians(leaves[0], ref.quat_scale_to_covar(*leaves[1:]), viewmats, Ks, W, H, antialiased=antialiased)
    closed = analytic.project_gaussians(*leaves, viewmats, Ks, W, H, antialiased=antialiased)
    g = torch.Generator().manual_seed(6)
    weights = [torch.randn(reference[i].shape, generator=g, dtype=torch.float64) for i in (0, 1, 2, 4)]

    def loss(outputs):
        return sum((outputs[i] * w).sum() for i, w in zip((0, 1, 2, 4), weights))

    for x, y in zip(torch.autograd.grad(loss(closed), leaves), torch.autograd.grad(loss(reference), leaves)):
        assert bool(torch.isfinite(x).all())
        # 1e-8 relative seen: a rank-1 covariance's compensation is the square root of a rounding
        # (1e-18), and its gradient scales that rounding by 1e9
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("needs_grad", ["viewmats", "Ks", "both"])
def test_cameras_that_need_gradients_take_the_autograd_projection(needs_grad):
    """Gradients reach viewmats and Ks through rasterize_gaussians (the autograd stages); the
    closed-form projection refuses either by name."""
    from mnemovision.kernels.gaussians import analytic

    means, quats, scales, opac, colors, viewmats, Ks = scene(n=12)
    viewmats, Ks = viewmats.clone(), Ks.clone()
    cameras = {"viewmats": viewmats, "Ks": Ks}
    leaves = [cameras[k].requires_grad_(True) for k in cameras if needs_grad in (k, "both")]
    r, a, _ = rasterize_gaussians(means, quats, scales, opac, colors, viewmats, Ks, W, H, backend="torch")
    grads = torch.autograd.grad(r.sum() + a.sum(), leaves)
    assert all(bool(t.abs().sum() > 0) for t in grads)
    with pytest.raises(ValueError, match="viewmats or Ks"):
        analytic.project_gaussians(means, quats, scales, viewmats, Ks, W, H)


def test_composite_gradcheck():
    means, quats, scales, opac, colors, viewmats, Ks = scene(n=6)
    w, h = 9, 7
    Ks = Ks.clone()
    Ks[..., 0, 2], Ks[..., 1, 2], Ks[..., 0, 0], Ks[..., 1, 1] = 4.5, 3.5, 12.0, 12.0

    def render(m, o, c):
        r, a, _ = rasterize_gaussians(m, quats, scales, o, c, viewmats, Ks, w, h, render_mode="RGB+D")
        return r, a

    assert torch.autograd.gradcheck(render, (means, opac, colors))


# ---------------------------------------------------------------------------------------------
# gsplat's PyTorch reference on the real garden cameras (dev extra)


@pytest.mark.data
@pytest.mark.skipif(importlib.util.find_spec("gsplat") is None, reason="gsplat (dev extra) is not installed")
def test_stages_agree_with_gsplat_on_the_real_garden_cameras(shared_data):
    from gsplat.cuda import _torch_impl as gs

    data = np.load(shared_data("splatting", "garden", "test_garden.npz"))
    n = 4000
    g = torch.Generator().manual_seed(0)
    means = torch.from_numpy(data["means3d"][:n]).double()
    quats = torch.randn(n, 4, generator=g, dtype=torch.float64)
    scales = torch.rand(n, 3, generator=g, dtype=torch.float64) * 0.05
    viewmats, Ks = torch.from_numpy(data["viewmats"]).double(), torch.from_numpy(data["Ks"]).double()
    width, height = int(data["width"]), int(data["height"])
    covars = ref.quat_scale_to_covar(quats, scales)
    radii, means2d, depths, conics, comps = gs._fully_fused_projection(means, covars, viewmats, Ks, width, height, calc_compensations=True)
    m2, con, dep, rad, comp = ref.project_gaussians(means, covars, viewmats, Ks, width, height, antialiased=True)
    vis = (radii > 0).all(-1)
    assert vis.sum() > 1000
    assert torch.equal(vis, (rad > 0).all(-1)) and torch.equal(radii.to(torch.int32), rad)
    torch.testing.assert_close(m2[vis], means2d[vis], rtol=1e-10, atol=1e-8)
    torch.testing.assert_close(con[vis], conics[vis], rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(dep, depths)
    torch.testing.assert_close(comp[vis], comps[vis])
    # tile intersections: the same (camera, tile, gaussian) triples in the same order
    tiles_x, tiles_y = math.ceil(width / 16), math.ceil(height / 16)
    _, isect_ids, flatten_ids = gs._isect_tiles(means2d[None], radii[None], depths[None], 16, tiles_x, tiles_y)
    keys, flat_ids, _ = ref.isect_tiles(m2, rad, dep, width, height)
    tile_bits = (tiles_x * tiles_y).bit_length()
    gs_camera = isect_ids >> (32 + tile_bits)
    gs_tile = (isect_ids >> 32) & ((1 << tile_bits) - 1)
    assert torch.equal(gs_camera * tiles_x * tiles_y + gs_tile, keys)
    assert torch.equal(flatten_ids.long(), flat_ids)
    # spherical harmonics, every degree
    dirs = torch.randn(n, 3, generator=g, dtype=torch.float64)
    coeffs = torch.randn(n, 16, 3, generator=g, dtype=torch.float64)
    for degree in range(4):
        torch.testing.assert_close(ref.spherical_harmonics(degree, dirs, coeffs), torch.clamp_min(gs._spherical_harmonics(degree, dirs, coeffs) + 0.5, 0.0))


# ---------------------------------------------------------------------------------------------
# triton compositor: under TRITON_INTERPRET=1 on CPU (set by conftest), natively on a GPU

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.triton
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
@pytest.mark.parametrize(
    "render_mode, channels, batch, v, background",
    [("RGB", 1, (), 1, True), ("RGB", 3, (), 1, True), ("RGB+D", 5, (2,), 2, False), ("D", 3, (), 2, False), ("RGB+ED", 32, (), 1, True), ("RGB", 160, (), 1, False),
     ("RGB+D", 512, (), 1, True),  # the widest the contract allows, in one pass
     ("RGB+D", 3, (2, 2), 1, True)],  # two batch dims, one view: the per-Gaussian inputs reach the kernels unreshaped
)
def test_triton_matches_the_reference(render_mode, channels, batch, v, background):
    from mnemovision.kernels._testing import assert_kernel_close

    inputs64 = scene(n=60, c=channels, batch=batch, v=v)
    bg64 = torch.rand(*batch, v, channels, dtype=torch.float64, requires_grad=True) if background else None

    def run(inputs, bg, backend):
        r, a, info = rasterize_gaussians(*inputs, W, H, render_mode=render_mode, backgrounds=bg, absgrad=True, backend=backend)
        leaves = list(inputs[:5]) + ([bg] if bg is not None else [])
        gr = torch.randn(r.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(r)
        ga = torch.randn(a.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64).to(a)
        grads = torch.autograd.grad((r * gr).sum() + (a * ga).sum(), leaves)
        return [r, a, *grads, info["absgrad"].value]

    def cast(inputs, bg):
        moved = [t.detach().float().to(DEVICE).requires_grad_(t.requires_grad) for t in inputs]
        return moved, (None if bg is None else bg.detach().float().to(DEVICE).requires_grad_(True))

    want = run(inputs64, bg64, "torch")
    got = run(*cast(inputs64, bg64), "triton")
    same = run(*cast(inputs64, bg64), "torch")
    names = ["render", "alpha", "dmeans", "dquats", "dscales", "dopacities", "dcolors"] + (["dbackgrounds"] if background else []) + ["absgrad"]
    for name, g, s, w in zip(names, got, same, want):
        assert_kernel_close(g, s, w.to(g.device), name)


def pixels_show(ids, px, py, means2d, conics, opacities):
    """[E] bool, brute force: whether entry e's Gaussian reaches alpha 1/255 at one of the pixel
    centres px, py ([E, P] or [1, P])."""
    m2, con = means2d.reshape(-1, 2)[ids], conics.reshape(-1, 3)[ids]
    dx, dy = px - m2[:, :1], py - m2[:, 1:]
    sigma = 0.5 * (con[:, :1] * dx * dx + con[:, 2:] * dy * dy) + con[:, 1:2] * dx * dy
    return (opacities.reshape(-1)[ids][:, None] * torch.exp(-sigma) >= 1.0 / 255.0).any(1)


def assert_only_unseen_dropped(ref_keys, ref_ids, keys, ids, means2d, conics, opacities, width=W, height=H):
    """(keys, ids) are ref's sorted entries, in ref's order, less some whose tile has no pixel centre
    where alpha reaches 1/255 (brute force over the 256 pixels), and some were dropped. ``keys`` may
    be int32 (the Triton binning's tile ids)."""
    keys = keys.long()
    tiles_x, n_tiles = math.ceil(width / 16), math.ceil(width / 16) * math.ceil(height / 16)
    local = torch.arange(256, device=ref_keys.device)
    px = (ref_keys % n_tiles % tiles_x)[:, None] * 16 + local % 16 + 0.5
    py = (ref_keys % n_tiles // tiles_x)[:, None] * 16 + local // 16 + 0.5
    shows = pixels_show(ref_ids, px, py, means2d, conics, opacities)
    kept = torch.isin((ref_keys << 32) | ref_ids, (keys << 32) | ids)
    assert torch.equal(ref_keys[kept], keys) and torch.equal(ref_ids[kept], ids), "a subset, in ref's order"
    assert not (shows & ~kept).any(), "an entry some pixel shows in was dropped"
    assert 0 < int((~kept).sum()) and int(kept.sum()) > 50, "some entries dropped, most kept"


def test_drop_unseen_keeps_every_entry_a_pixel_shows():
    """The PyTorch path's culling of binned entries (the same test as the Triton binning)."""
    means, quats, scales = (t.detach() for t in scene(n=50, batch=(), v=1)[:3])
    views, ks = scene(n=1, v=1)[5:]
    m2, con, dep, rad, _ = ref.project_gaussians(means, ref.quat_scale_to_covar(quats, scales), views, ks, W, H)
    opacities = torch.rand(dep.shape, generator=torch.Generator().manual_seed(4), dtype=dep.dtype) * 0.9 + 0.02
    keys, ids, offsets = ref.isect_tiles(m2, rad, dep, W, H)
    tiles_x = math.ceil(W / 16)
    kept_keys, kept_ids, kept_offsets = ref.drop_unseen(keys, ids, m2, con, opacities, 1, tiles_x * math.ceil(H / 16), tiles_x)
    assert_only_unseen_dropped(keys, ids, kept_keys, kept_ids, m2, con, opacities)
    assert int(kept_offsets[-1]) == kept_ids.numel() and torch.equal(kept_offsets.diff(), torch.bincount(kept_keys, minlength=kept_offsets.numel() - 1))


def test_split_tiles_keeps_every_entry_a_pixel_of_the_sub_tile_shows():
    """The PyTorch compositor's 8x8 sub-tiles, over two views of an image whose edges cut tiles and
    sub-tiles: each sub-tile's list is its 16x16 tile's list, in order, less entries that no pixel
    centre of the sub-tile inside the image shows (brute force); feature rows follow their entries."""
    inputs = scene(n=60, v=2)
    means, quats, scales = (t.detach() for t in inputs[:3])
    views, ks = inputs[5:]
    m2, con, dep, rad, _ = ref.project_gaussians(means, ref.quat_scale_to_covar(quats, scales), views, ks, W, H)
    m2, con = m2.reshape(-1, 2), con.reshape(-1, 3)
    opac = torch.rand(dep.numel(), generator=torch.Generator().manual_seed(4), dtype=dep.dtype) * 0.9 + 0.02
    tiles_x, tiles_y = math.ceil(W / 16), math.ceil(H / 16)
    keys, ids, offsets = ref.drop_unseen(*ref.isect_tiles(m2.view(2, -1, 2), rad, dep, W, H)[:2], m2, con, opac, 2, tiles_x * tiles_y, tiles_x)
    meta = {"views": 2, "width": W, "height": H, "tile_size": 16, "tiles_x": tiles_x, "tiles_y": tiles_y, "block": 64}
    sub_ids, sub_rows, sub_offsets, sub_meta = ref.split_tiles(ids, 3 * ids + 1, offsets, m2, con, opac, meta, 8, rows_per_step=16)
    sub_x, sub_y = math.ceil(W / 8), math.ceil(H / 8)
    assert (sub_meta["tile_size"], sub_meta["tiles_x"], sub_meta["tiles_y"], sub_meta["block"]) == (8, sub_x, sub_y, 64)
    assert sub_offsets.numel() == 2 * sub_x * sub_y + 1 and int(sub_offsets[-1]) == sub_ids.numel()
    assert torch.equal(sub_rows, 3 * sub_ids + 1)
    shortened = 0
    for view in range(2):
        for sy in range(sub_y):
            for sx in range(sub_x):
                tile = view * tiles_x * tiles_y + sy // 2 * tiles_x + sx // 2
                parent = ids[offsets[tile]:offsets[tile + 1]]
                sub = view * sub_x * sub_y + sy * sub_x + sx
                got = sub_ids[sub_offsets[sub]:sub_offsets[sub + 1]].tolist()
                remaining = iter(parent.tolist())
                assert all(entry in remaining for entry in got), "a subsequence of the tile's list"
                py, px = torch.meshgrid(
                    torch.arange(sy * 8, min(sy * 8 + 8, H), dtype=m2.dtype) + 0.5,
                    torch.arange(sx * 8, min(sx * 8 + 8, W), dtype=m2.dtype) + 0.5, indexing="ij",
                )
                shows = pixels_show(parent, px.reshape(1, -1), py.reshape(1, -1), m2, con, opac)
                assert set(parent[shows].tolist()) <= set(got), "an entry a pixel of the sub-tile shows was dropped"
                shortened += len(got) < parent.numel()
    assert shortened > 0 and sub_ids.numel() > ids.numel()


def test_composite_stage_takes_lists_that_were_not_culled():
    """The compositing stage called on ``isect_tiles``' lists as they come (not through
    ``drop_unseen``; 8x8 tiles, which it composites without splitting them into culled sub-tiles),
    with Gaussians of opacity 0 and 1e-4 in them (below 1/255: alpha never counts):
    the render and every gradient equal those on the culled lists and are finite, the faint
    Gaussians' opacity gradients 0 (the gradient's 1 / opacity is taken at 1/255 at least)."""
    inputs = scene(n=40, v=2)
    means, quats, scales = (t.detach() for t in inputs[:3])
    views, ks = inputs[5:]
    m2, con, dep, rad, _ = ref.project_gaussians(means, ref.quat_scale_to_covar(quats, scales), views, ks, W, H)
    opac = torch.rand(dep.shape, generator=torch.Generator().manual_seed(4), dtype=dep.dtype) * 0.9 + 0.05
    opac[:, :5], opac[:, 5:10] = 0.0, 1e-4
    colors = torch.rand(dep.numel(), 3, generator=torch.Generator().manual_seed(5), dtype=dep.dtype)
    tiles_x, tiles_y = math.ceil(W / 8), math.ceil(H / 8)
    keys, ids, offsets = ref.isect_tiles(m2, rad, dep, W, H, 8)
    culled = ref.drop_unseen(keys, ids, m2.reshape(-1, 2), con.reshape(-1, 3), opac.reshape(-1), 2, tiles_x * tiles_y, tiles_x, 8)[1:]
    assert bool(torch.isin(ids, torch.arange(5)).any()), "the lists hold opacity-0 Gaussians"
    assert ids.numel() > culled[0].numel()

    def run(lists):
        meta = {"views": 2, "width": W, "height": H, "tile_size": 8, "tiles_x": tiles_x, "tiles_y": tiles_y, "block": 64,
                "chunk_elems": 1 << 17, "absgrad": False, "absgrad_holder": None}
        leaves = [t.clone().requires_grad_(True) for t in (m2, con, opac, colors, dep)]
        r, a = ref.composite(*leaves, None, lists[0], lists[0], lists[1], meta)
        g = torch.randn(r.shape, generator=torch.Generator().manual_seed(6), dtype=r.dtype)
        return [r, a, *torch.autograd.grad((r * g).sum() + a.sum(), leaves)]

    got, want = run((ids, offsets)), run(culled)
    for name, x, y in zip(["render", "alpha", "dmeans2d", "dconics", "dopacities", "dcolors", "ddepths"], got, want):
        assert bool(torch.isfinite(x).all()), name
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12, msg=lambda m, name=name: f"{name}: {m}")
    assert not bool(got[4][:, :10].any()), "no gradient reaches opacities below 1/255"


def test_sub_tiles_do_not_change_the_render(monkeypatch):
    """Compositing whole 16x16 tiles, 8x8 sub-tiles (the default) or 4x4 ones gives the same render
    and gradients (float64; two views, depth, a background, an image whose edges cut sub-tiles), up
    to rounding: sigma and the gradient sums are expanded about each (sub-)tile's centre, so they
    round differently at each size (within 1e-12 of each tensor's largest value)."""
    inputs = scene(n=60, v=2)
    bg = torch.rand(2, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def run():
        r, a, _ = rasterize_gaussians(*inputs, W, H, render_mode="RGB+ED", backgrounds=bg, backend="torch")
        gr = torch.randn(r.shape, generator=torch.Generator().manual_seed(1), dtype=r.dtype)
        return [r, a, *torch.autograd.grad((r * gr).sum() + a.sum(), inputs[:5])]

    default = run()
    for size in (16, 4):
        monkeypatch.setattr(ref, "COMPOSITE_TILE", size)
        for x, y in zip(run(), default):
            torch.testing.assert_close(x, y, rtol=0, atol=1e-12 * float(y.detach().abs().max()))


@pytest.mark.triton
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
@pytest.mark.parametrize("antialiased", [False, True])
def test_triton_projection_and_binning_match_the_reference(antialiased):
    """The fused projection (every output, and the gradients of means, quats and scales from a loss on
    all of them, culled Gaussians included) and the tile binning (ref's entries less those no pixel
    shows) against ref, stage by stage."""
    from mnemovision.kernels._testing import assert_kernel_close
    from mnemovision.kernels.gaussians import triton_project

    means64, quats64, scales64 = (t.detach() for t in scene(n=50, batch=(2,), v=2)[:3])
    means64 = means64.clone()
    means64[0, :3, 2] = -1.0  # behind the camera
    means64[1, 3:6, 0] = 30.0  # far outside the image
    views64, ks64 = scene(n=1, batch=(2,), v=2)[5:]
    up = torch.Generator().manual_seed(3)

    def run(means, quats, scales, views, ks, fused):
        leaves = [t.detach().clone().requires_grad_(True) for t in (means, quats, scales)]
        if fused:
            outs = triton_project.project(*leaves, views, ks, W, H, 0.01, 1e10, antialiased)
        else:
            per = [ref.project_gaussians(leaves[0][i], ref.quat_scale_to_covar(leaves[1][i], leaves[2][i]), views[i], ks[i], W, H, 0.01, 1e10, antialiased) for i in range(2)]
            outs = [torch.cat([p[j] for p in per]) for j in range(5)]
        smooth = [outs[0], outs[1], outs[2], outs[4]]
        loss = sum((o * torch.randn(o.shape, generator=up, dtype=torch.float64).to(o)).sum() for o in smooth)
        return outs, torch.autograd.grad(loss, leaves)

    def cast(t):
        return t.float().to(DEVICE)

    want, want_g = run(means64, quats64, scales64, views64, ks64, False)
    up.manual_seed(3)
    got, got_g = run(*map(cast, (means64, quats64, scales64, views64, ks64)), True)
    up.manual_seed(3)
    same, same_g = run(*map(cast, (means64, quats64, scales64, views64, ks64)), False)
    assert torch.equal(got[3].cpu(), want[3].to(torch.int32)), "radii"
    assert (got[3][:2, :3] == 0).all() and (got[3][2:, 3:6] == 0).all(), "culled Gaussians have radius 0"
    for name, i in (("means2d", 0), ("conics", 1), ("depths", 2), ("compensations", 4)):
        assert_kernel_close(got[i], same[i], want[i].to(got[i].device), name)
    for name, g, s, w in zip(("dmeans", "dquats", "dscales"), got_g, same_g, want_g):
        assert_kernel_close(g, s, w.to(g.device), name)
    # binning: ref's entries in ref's order, less those whose tile no pixel centre reaches alpha 1/255 in
    opacities = torch.rand(got[2].shape, generator=torch.Generator().manual_seed(4)).to(got[2]) * 0.9 + 0.02
    fused_keys, fused_ids, fused_offsets = triton_project.isect_tiles(got[0], got[3], got[2], got[1], opacities, W, H)
    ref_keys, ref_ids, ref_offsets = ref.isect_tiles(got[0], got[3], got[2], W, H)
    assert_only_unseen_dropped(ref_keys, ref_ids, fused_keys, fused_ids, got[0], got[1], opacities)
    assert torch.equal(fused_offsets[-1], torch.tensor(fused_ids.numel(), device=fused_offsets.device))


@pytest.mark.triton
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
@pytest.mark.parametrize("scan_block, scan_max", [(None, None), (2, None), (None, 2)])
def test_triton_binning_of_wide_rectangles(scan_block, scan_max, monkeypatch):
    """Rectangles of 1 to a few hundred tiles (the binning kernel spreads each program's (Gaussian,
    tile) items over its lanes, so a wide one spans many steps and lanes), two views, culled and
    too faint Gaussians, a pair count that is no multiple of the program size: ref's entries in ref's
    order less unseen ones, and the tile offsets of the entries kept. With ``order``, the same lists
    and the tiles longest list first (equal lengths by index). With ``scan_block`` 2 the binning
    programs' counts (three programs) are scanned two at a time; with ``scan_max`` 2 by
    ``torch.cumsum`` (more programs than the scan kernel takes)."""
    from mnemovision.kernels.gaussians import triton_project

    if scan_block is not None:
        monkeypatch.setattr(triton_project, "SCAN_BLOCK", scan_block)
    if scan_max is not None:
        monkeypatch.setattr(triton_project, "SCAN_MAX_PROGRAMS", scan_max)
        monkeypatch.setattr(triton_project, "_bases", None)  # the scan kernel must not be launched

    g = torch.Generator().manual_seed(0)
    width, height, v, n = 203, 117, 2, 45
    m2 = torch.rand(v, n, 2, generator=g) * torch.tensor([width * 1.2, height * 1.2]) - torch.tensor([width * 0.1, height * 0.1])
    sx, sy = (torch.exp(torch.rand(v, n, generator=g) * 4.5) for _ in range(2))  # 1 to 90 pixels
    rho = (torch.rand(v, n, generator=g) - 0.5) * 1.6
    cov = torch.stack([sx * sx, rho * sx * sy, sy * sy], -1)
    det = cov[..., 0] * cov[..., 2] - cov[..., 1] ** 2
    conics = torch.stack([cov[..., 2] / det, -cov[..., 1] / det, cov[..., 0] / det], -1)
    radii = torch.ceil(3.33 * torch.stack([cov[..., 0], cov[..., 2]], -1).sqrt()).to(torch.int32)
    radii[:, :4] = 0  # culled
    depths = torch.rand(v, n, generator=g) * 10 + 0.1
    opacities = torch.rand(v, n, generator=g) * 0.9 + 0.02
    opacities[:, 4:7] = 0.001  # alpha never reaches 1/255
    tiles = (radii[..., 0] // 8 + 2) * (radii[..., 1] // 8 + 2)
    assert int(tiles.max()) > 200 and int((tiles <= 16).sum()) >= 10, "a mix of narrow and wide rectangles"
    keys, ids, offsets = triton_project.isect_tiles(*(t.to(DEVICE) for t in (m2, radii, depths, conics, opacities)), width, height)
    ref_keys, ref_ids, _ = ref.isect_tiles(m2, radii, depths, width, height)
    keys, ids, offsets = keys.cpu(), ids.cpu(), offsets.cpu()
    assert_only_unseen_dropped(ref_keys, ref_ids, keys, ids, m2, conics, opacities, width, height)
    n_tiles = math.ceil(width / 16) * math.ceil(height / 16)
    assert torch.equal(offsets.diff(), torch.bincount(keys.long(), minlength=v * n_tiles)) and int(offsets[-1]) == ids.numel()
    *lists, tile_order = triton_project.isect_tiles(*(t.to(DEVICE) for t in (m2, radii, depths, conics, opacities)), width, height, order=True)
    for got, want in zip(lists, (keys, ids, offsets)):
        assert torch.equal(got.cpu(), want)
    lengths = offsets.diff()
    expected = sorted(range(v * n_tiles), key=lambda t: (-int(lengths[t]), t))
    assert len(set(lengths.tolist())) < v * n_tiles, "equal lengths to order"
    assert tile_order.dtype == torch.int64 and tile_order.cpu().tolist() == expected


@pytest.mark.triton
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
@pytest.mark.parametrize("n, block", [(1, 16), (16, 16), (17, 16), (300, 16), (1000, 1024)])
def test_triton_binning_bases_are_the_exclusive_scan_of_the_totals(n, block):
    """``_bases_kernel``: each binning program's first slot (the totals before it, int64) and, last,
    the sum of all, in one program BLOCK totals a step (one step, exactly one, one and one more, many);
    totals large enough that their sum leaves int32."""
    from mnemovision.kernels.gaussians import triton_project

    g = torch.Generator().manual_seed(n)
    totals = torch.randint(0, 2**30, (n,), generator=g, dtype=torch.int32)
    bases = torch.full((n + 1,), -1, dtype=torch.int64, device=DEVICE)
    triton_project._bases[(1,)](totals.to(DEVICE), bases, n, BLOCK=block)
    expected = torch.cat([torch.zeros(1, dtype=torch.int64), totals.long().cumsum(0)])
    assert torch.equal(bases.cpu(), expected)
    assert n < 3 or int(expected[-1]) > 2**31


@pytest.mark.triton
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
@pytest.mark.parametrize("n_tiles", [1, 63, 64, 65, 200])
def test_triton_tile_order_ranks_lists_longest_first(n_tiles, monkeypatch):
    """``tile_order``: a stable argsort of the negated list lengths, by the ranking kernel (programs
    of 64 tiles against all of them: one block, a block and one, several) and, past
    ``ORDER_MAX_TILES``, by ``torch.argsort``; many equal lengths, empty lists among them."""
    from mnemovision.kernels.gaussians import triton_project

    g = torch.Generator().manual_seed(n_tiles)
    lengths = torch.randint(0, 6, (n_tiles,), generator=g) ** 2  # 0, 1, 4, ...: ties everywhere
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
    expected = sorted(range(n_tiles), key=lambda t: (-int(lengths[t]), t))
    assert len(set(lengths.tolist())) < n_tiles or n_tiles == 1
    offsets = offsets.to(DEVICE)
    with monkeypatch.context() as patch:  # the kernel, up to the limit: torch.argsort must not be called
        patch.setattr(triton_project, "ORDER_MAX_TILES", n_tiles)
        patch.setattr(torch, "argsort", None)
        order = triton_project.tile_order(offsets)
    assert order.dtype == torch.int64 and order.cpu().tolist() == expected
    monkeypatch.setattr(triton_project, "ORDER_MAX_TILES", n_tiles - 1)  # the fallback: no kernel
    monkeypatch.setattr(triton_project, "_tile_order", None)
    order = triton_project.tile_order(offsets)
    assert order.dtype == torch.int64 and order.cpu().tolist() == expected


@pytest.mark.triton
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_triton_sh_antialiased_camera_gradients_and_edge_cases():
    """SH colours with antialiasing, a camera that requires grad (the PyTorch projection then takes
    over), an empty scene and a one-pixel image: the triton backend agrees with the torch backend."""
    inputs = [t.detach().float().to(DEVICE) for t in scene(n=30, v=2, sh_degree=2)]

    def run(backend, camera_grad, width=W, height=H, count=30):
        leaves = [t[:count] if i < 5 else t for i, t in enumerate(inputs)]
        leaves = [t.clone().requires_grad_(i < 5 or (camera_grad and i == 5)) for i, t in enumerate(leaves)]
        r, a, info = rasterize_gaussians(*leaves, width, height, sh_degree=2, antialiased=True, backend=backend)
        wanted = [t for t in leaves if t.requires_grad]
        grads = torch.autograd.grad(r.square().sum() + a.sum(), wanted, allow_unused=True)
        return [r, a, *[torch.zeros_like(t) if g is None else g for t, g in zip(wanted, grads)]]

    for camera_grad in (False, True):
        for got, want in zip(run("triton", camera_grad), run("torch", camera_grad)):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    for width, height, count in ((1, 1, 30), (W, H, 0)):
        got, want = run("triton", False, width, height, count), run("torch", False, width, height, count)
        for g, w in zip(got, want):
            assert torch.isfinite(g).all()
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)


@pytest.mark.triton
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
@pytest.mark.parametrize(
    "sequential, settings, channels",
    [(False, {"BLOCK_G": 2}, 3), (False, {"BLOCK_G": 4}, 3), (False, {"BLOCK_G": 8}, 1), (False, {"BLOCK_G": 32}, 3), (False, {"BLOCK_G": 16}, 40)]
    + [(True, {"BLOCK_G": g, "NW": w, "SUB": sub}, c) for (g, w, sub), c in zip(((16, 8, 1), (8, 1, 1), (8, 4, 1), (4, 2, 1), (4, 1, 8), (8, 1, 4)), (3, 1, 4, 2, 3, 4))],
)
def test_triton_compositor_variants_the_autotuner_may_pick(sequential, settings, channels, monkeypatch):
    """Every batch size the GPU autotuner may pick gives the same render and gradients: the batched
    kernels (small-C and matmul paths, with the batched backward) and the one-Gaussian-at-a-time
    kernels for C <= 4, whose pixel grid follows the warp count (NW) and the programs per tile (SUB:
    one-warp programs on two or four rows each, whose backward skips the Gaussians that reach none
    of their pixels)."""
    from mnemovision.kernels.gaussians import triton_impl

    launch = {"BLOCK_C": 16, "PREC": "ieee", "num_warps": 4} if not sequential else {"num_warps": settings["NW"]}
    monkeypatch.setenv("MNEMOVISION_TRITON_AUTOTUNE", "0")
    monkeypatch.setattr(triton_impl, "SEQUENTIAL_SMALL_C", sequential)
    monkeypatch.setattr(triton_impl, "SPLIT_WIDE", False)
    monkeypatch.setattr(triton_impl, "_fixed_settings", lambda c, backward, sequential: {**launch, **settings})
    assert_parity_with_float64(scene(n=80, c=channels, v=2), W, H)


@pytest.mark.triton
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
@pytest.mark.parametrize("index", range(4))
def test_triton_wide_candidates_and_chunks(index, monkeypatch):
    """C > 4 (the wide forward and backward): candidate ``index`` of each matmul pass (compose, dots,
    features; run as fixed settings, FMA or TF32x3 products) gives the float64 path's render and
    gradients; with index 0 the scratch holds 24 list entries only, so the tiles go through it in
    many chunks (some larger than that); with index 1 the few-channel kernels are switched to the
    path that is not the default (the wide walks must not follow). Passes with fewer candidates wrap
    around."""
    from mnemovision.kernels.gaussians import triton_wide

    candidates = {"dots": triton_wide.dots_configs(), "feature": triton_wide.feature_configs(), "compose": triton_wide.compose_configs()}

    def fixed(tuned, kind):
        config = candidates[kind][index % len(candidates[kind])]
        return tuned.launcher, {**config.kwargs, "num_warps": config.num_warps, "num_stages": config.num_stages}

    monkeypatch.setattr(triton_wide, "_launch", fixed)
    if index == 0:
        monkeypatch.setattr(triton_wide, "SCRATCH_BYTES", 24 * triton_wide.ROW * 4)
    if index == 1:  # the other small-C path chosen: the wide walks still take the sequential kernels
        from mnemovision.kernels.gaussians import triton_impl

        monkeypatch.setattr(triton_impl, "SEQUENTIAL_SMALL_C", not triton_impl.SEQUENTIAL_SMALL_C)
    assert_parity_with_float64(scene(n=80, c=40, v=2), W, H)


@pytest.mark.triton
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
@pytest.mark.parametrize("width, height, count", [(W, H, 0), (1, 1, 80), (W, H, 1)])
def test_triton_wide_path_edge_cases(width, height, count):
    """C > 4 through the wide forward and backward: an empty scene, a one-pixel image, a single
    Gaussian, with a depth channel and a background: the torch backend's render and gradients."""
    inputs = [t.detach().float().to(DEVICE) for t in scene(n=80, c=40, v=2)]
    bg = torch.rand(2, 40, generator=torch.Generator().manual_seed(2)).to(DEVICE)

    def run(backend):
        leaves = [t[:count].clone().requires_grad_(True) if i < 5 else t for i, t in enumerate(inputs)]
        r, a, _ = rasterize_gaussians(*leaves, width, height, backgrounds=bg, render_mode="RGB+D", backend=backend)
        grads = torch.autograd.grad(r.square().sum() + a.sum(), leaves[:5], allow_unused=True)
        return [r, a, *[torch.zeros_like(t) if g is None else g for t, g in zip(leaves[:5], grads)]]

    for got, want in zip(run("triton"), run("torch")):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.triton
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_triton_wide_backward_runs_twice_through_one_graph():
    """The wide backward's middle pass writes its stopping points over a copy: a second backward
    through the same graph (``retain_graph``) starts from the forward's, and gives the same gradients:
    bit for bit in the interpreter; on a GPU the per-Gaussian sums are atomic adds in whatever order
    the programs run (an H200 gave different bits, 2026-11-29), so there to 1e-5 of the largest."""
    leaves = [t.detach().float().to(DEVICE).requires_grad_(i < 5) for i, t in enumerate(scene(n=80, c=40, v=2))]
    r, a, _ = rasterize_gaussians(*leaves, W, H, render_mode="RGB+D", backend="triton")
    loss = r.square().sum() + a.sum()
    first = torch.autograd.grad(loss, leaves[:5], retain_graph=True)
    second = torch.autograd.grad(loss, leaves[:5])
    for name, g1, g2 in zip(("means", "quats", "scales", "opacities", "colors"), first, second):
        assert g1.abs().max() > 0, name
        tol = 0.0 if DEVICE == "cpu" else 1e-5 * float(g1.abs().max())
        torch.testing.assert_close(g2, g1, rtol=0, atol=tol, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.triton
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
@pytest.mark.parametrize("sequential", [False, True])
@pytest.mark.parametrize("loss, background", [("render only", True), ("alpha only", False), ("sums", True), ("sums", False)])
def test_triton_gradients_when_one_output_is_unused(loss, background, sequential, monkeypatch):
    """A loss through the render alone (no alpha gradient), through alpha alone (no render
    gradient) or through plain sums (broadcast, stride-0 gradients), with or without a background:
    the triton backend's gradients, the background's included, match the torch backend's, for the
    batched and the one-Gaussian-at-a-time small-C kernels."""
    from mnemovision.kernels.gaussians import triton_impl

    monkeypatch.setattr(triton_impl, "SEQUENTIAL_SMALL_C", sequential)
    inputs = [t.detach().float().to(DEVICE) for t in scene(n=40, c=3, v=2)]
    bg = torch.rand(2, 3, generator=torch.Generator().manual_seed(3)).to(DEVICE) if background else None
    weights = torch.rand(2, H, W, 3, generator=torch.Generator().manual_seed(4)).to(DEVICE)

    def run(backend):
        leaves = [t.clone().requires_grad_(i < 5) for i, t in enumerate(inputs)]
        bg_leaf = None if bg is None else bg.clone().requires_grad_(True)
        r, a, _ = rasterize_gaussians(*leaves, W, H, backgrounds=bg_leaf, backend=backend)
        total = {"render only": (r * weights).sum(), "alpha only": a.square().sum(), "sums": r.sum() + a.sum()}[loss]
        wanted = leaves[:5] + ([] if bg_leaf is None else [bg_leaf])
        return [r, a, *torch.autograd.grad(total, wanted)]

    got, want = run("triton"), run("torch")
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_wide_chunks_cover_every_tile_once():
    """The chunk plan: consecutive tile ranges covering all tiles, each within the scratch unless a
    single tile's list is larger; one chunk (offsets not read) when everything fits."""
    from mnemovision.kernels.gaussians import triton_wide

    counts = torch.tensor([3, 0, 10, 2, 2, 30, 1, 0, 4])
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)])
    row = triton_wide.ROW * 4
    plan = triton_wide.chunks(offsets, int(counts.sum()), len(counts), scratch_bytes=12 * row)
    assert [(t0, t1) for t0, t1, _, _ in plan] == [(0, 2), (2, 4), (4, 5), (5, 6), (6, 9)]
    assert all(e0 == offsets[t0] and rows == offsets[t1] - offsets[t0] for t0, t1, e0, rows in plan)
    assert triton_wide.chunks(offsets, int(counts.sum()), len(counts), scratch_bytes=52 * row) == [(0, 9, 0, 52)]


def assert_parity_with_float64(inputs64, width, height, calls=1):
    """Triton render, alpha, gradients of means..opacities and absgrad against the float64 PyTorch
    path, within the STYLE.md rule (at most twice the float32 PyTorch path's error, plus a floor)."""
    from mnemovision.kernels._testing import assert_kernel_close

    def run(inputs, backend):
        leaves = [t.clone().requires_grad_(i < 5) for i, t in enumerate(inputs)]
        r, a, info = rasterize_gaussians(*leaves, width, height, render_mode="RGB+D", absgrad=True, backend=backend)
        grads = torch.autograd.grad(r.square().sum() + a.sum(), leaves[:5])
        return [r, a, *grads, info["absgrad"].value]

    inputs32 = [t.detach().float().to(DEVICE) for t in inputs64]
    want, same = run([t.detach() for t in inputs64], "torch"), run(inputs32, "torch")
    names = ["render", "alpha", "dmeans", "dquats", "dscales", "dopacities", "dcolors", "absgrad"]
    for _ in range(calls):
        for name, g, s, w in zip(names, run(inputs32, "triton"), same, want):
            assert_kernel_close(g, s, w.to(g.device), name)


@pytest.mark.triton
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_triton_backward_sums_in_one_reduction(channels, monkeypatch):
    """The batched backward's per-Gaussian sums as compiled for a GPU (one multi-operand reduction
    per batch; the interpreter otherwise takes one sum per operand, being slow at the former), with
    depth and absgrad, on a one-tile image: the float64 PyTorch path's render and gradients."""
    from mnemovision.kernels.gaussians import triton_impl

    if triton_impl.INTERPRETED:
        monkeypatch.setattr(triton_impl, "ONE_REDUCTION", True)
    monkeypatch.setenv("MNEMOVISION_TRITON_AUTOTUNE", "0")
    monkeypatch.setattr(triton_impl, "_fixed_settings", lambda c, backward, sequential: {"BLOCK_G": 4, "BLOCK_C": 16, "PREC": "ieee", "num_warps": 4})
    assert_parity_with_float64(scene(n=6, c=channels), 16, 16)


# (channels, SEQUENTIAL_SMALL_C, SPLIT_WIDE): the batched small-C kernels, the one-Gaussian-at-a-time
# ones, the wide passes and the batched matmul kernels
COMPOSITOR_PATHS = [(3, False, True), (3, True, True), (8, False, True), (8, False, False)]


def use_compositor(monkeypatch, sequential: bool, split_wide: bool) -> None:
    """Route the triton backend's compositing through the path ``COMPOSITOR_PATHS`` names."""
    from mnemovision.kernels.gaussians import triton_impl

    monkeypatch.setattr(triton_impl, "SEQUENTIAL_SMALL_C", sequential)
    monkeypatch.setattr(triton_impl, "SPLIT_WIDE", split_wide)


def stacked_layers(channels):
    """Fourteen layers of opacity 0.5, then eight of opacity 0.05 (a second colour), stacked in
    depth on the image centre (float64 inputs, ``scene``'s camera). At the centre pixel the first
    13 layers leave T = 2^-13 (1.2e-4), the 14th would take it below 1e-4, so the walk stops there:
    a faint layer after it would leave T = 1.16e-4 >= 1e-4, yet shows nowhere the pixel stopped."""
    n_half, n_faint = 14, 8
    n = n_half + n_faint
    colors = torch.zeros(n, channels, dtype=torch.float64)
    colors[:n_half, 0] = 1.0
    colors[n_half:, 1] = 1.0
    layers = axis_layers([4.0 + 0.05 * i for i in range(n)], [0.5] * 3, [0.5] * n_half + [0.05] * n_faint, colors)
    return [t.requires_grad_(True) for t in layers] + scene()[5:]


def test_a_stopped_pixel_takes_no_later_gaussian():
    """The stopping rule on ``stacked_layers``: the centre pixel's render is the 13 half layers'
    (red 1 - 2^-13, none of the faint layers' green), its alpha 1 - 2^-13, though a faint layer
    alone would have kept T above 1e-4; and the render and gradients match the dense oracle."""
    r, a, _ = check_against_oracle(stacked_layers(3), backend="torch")
    torch.testing.assert_close(r[0, 14, 18], torch.tensor([1 - 2.0**-13, 0.0, 0.0], dtype=torch.float64), rtol=0, atol=1e-12)
    assert a[0, 14, 18, 0].item() == pytest.approx(1 - 2.0**-13, abs=1e-12)
    assert r[0, 14, 10, 1] > 0.005, "8 pixels from the centre the faint layers show"


@pytest.mark.triton
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
@pytest.mark.parametrize("channels, sequential, split_wide", COMPOSITOR_PATHS)
def test_triton_stops_each_pixel_where_the_reference_does(channels, sequential, split_wide, monkeypatch):
    """``stacked_layers`` on every compositor path (the batched small-C and matmul kernels, the
    one-Gaussian-at-a-time kernels, the wide passes): the centre pixel stops at list index 13 and
    the faint layers after it (indices 14 to 21; 16 on in the second batch of 16 under the
    interpreter) stay out of it, in the render and in the gradients, as in the float64 PyTorch path."""
    use_compositor(monkeypatch, sequential, split_wide)
    assert_parity_with_float64(stacked_layers(channels), W, H)


def curtain_scene(channels):
    """``scene``'s 40 Gaussians behind a curtain of 20 wide, flat layers of opacity 0.7 (float64):
    near-constant alpha over the image, so every pixel's transmittance is 0.3^7 = 2.2e-4 after seven
    of them and 6.6e-5 after eight, and every tile stops at its eighth entry, short of its list's end."""
    means, quats, scales, opac, colors, viewmats, Ks = (t.detach() for t in scene(n=40, c=channels))
    k = 20
    curtain_colors = torch.rand(k, channels, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    curtain = axis_layers([1.0 + 0.01 * i for i in range(k)], [50.0, 50.0, 0.01], [0.7] * k, curtain_colors)
    return [torch.cat(pair).requires_grad_(True) for pair in zip(curtain, (means, quats, scales, opac, colors))] + [viewmats, Ks]


@pytest.mark.triton
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
@pytest.mark.parametrize("forward_block, backward_block", [(4, 4), (16, 4), (4, 16)])
def test_triton_wide_passes_stop_where_the_walks_stopped(forward_block, backward_block, monkeypatch):
    """``curtain_scene`` at C = 8 (the wide passes): the forward walk records where each tile stopped,
    past its eighth entry and short of its list's end, and the passes after it read no scratch row
    beyond that (rows there are stale); the backward walk, checking liveness at other intervals than
    the forward (the autotuner picks each separately), records where it stopped for the feature pass,
    whose rows past it hold G . f, not weights. Render and gradients: the float64 PyTorch path's."""
    from mnemovision.kernels.gaussians import triton_impl

    monkeypatch.setenv("MNEMOVISION_TRITON_AUTOTUNE", "0")
    monkeypatch.setattr(triton_impl, "_fixed_settings", lambda c, backward, sequential: {"BLOCK_G": backward_block if backward else forward_block, "NW": 8, "SUB": 1, "num_warps": 8})
    wide_backward, seen = triton_impl._wide_backward, []

    def spy(inputs, grads, stops, *args):
        seen.append((inputs[0].clone(), stops.clone()))
        return wide_backward(inputs, grads, stops, *args)

    monkeypatch.setattr(triton_impl, "_wide_backward", spy)
    assert_parity_with_float64(curtain_scene(8), W, H)
    (offsets, stops), = seen
    start, end = offsets[:-1], offsets[1:]
    stopped_at = stops.long() - start
    assert bool((end - start >= 20).all()), "every tile lists the whole curtain"
    # every pixel stops at list index 7 (the 8th layer), found at the end of the block that holds it
    assert stopped_at.tolist() == [-(-8 // forward_block) * forward_block] * len(stopped_at)


@pytest.mark.triton
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
@pytest.mark.parametrize("channels, sequential, split_wide", COMPOSITOR_PATHS)
def test_triton_clamped_alpha_takes_no_gradient(channels, sequential, split_wide, monkeypatch):
    """Half the Gaussians fully opaque, so alpha = min(0.99, o exp(-sigma)) clamps near their
    centres, where it passes no gradient to opacity, conic or 2-D mean: every compositor path's
    render and gradients match the float64 PyTorch path (none of the other triton scenes clamps)."""
    use_compositor(monkeypatch, sequential, split_wide)
    inputs = scene(n=40, c=channels, seed=3)
    with torch.no_grad():
        inputs[3][::2] = 1.0
    assert_parity_with_float64(inputs, W, H)


@pytest.mark.gpu
@pytest.mark.triton
@pytest.mark.parametrize("channels", [3, 40])
def test_triton_autotuned_compositor_matches_the_reference(channels, monkeypatch):
    """The autotuner runs every candidate on the real buffers: it must zero the atomically
    accumulated gradients around its trials (the parity tests above may run with it off)."""
    monkeypatch.setenv("MNEMOVISION_TRITON_AUTOTUNE", "1")
    assert_parity_with_float64(scene(n=300, c=channels, v=2, seed=channels), 67, 45, calls=2)  # the first call tunes, the second reuses the choice


@pytest.mark.triton
@pytest.mark.parametrize("channels, sequential", [(3, False), (3, True), (8, False)])
def test_triton_autotuned_launches_on_cpu(channels, sequential, autotune_on_cpu, monkeypatch):
    """The GPU launch path on CPU: the first call runs every candidate through Triton's autotuner
    (its trials must reset the gradients they accumulate and restore the scratch they rewrite), the
    second launches the chosen (last) candidates directly; both match the float64 reference. At
    C = 3 with either small-C path (batched, the default, or one Gaussian at a time)."""
    from mnemovision.kernels.gaussians import triton_impl, triton_seq, triton_wide

    monkeypatch.setattr(triton_impl, "SEQUENTIAL_SMALL_C", sequential)
    inputs = scene(n=40, c=channels, seed=channels)
    assert_parity_with_float64(inputs, 37, 21)
    if channels <= 4 and not sequential:  # the batched kernels, pruned to their small-C candidates
        expected = len(triton_impl._FWD_SMALL_C_CONFIGS) + len(triton_impl._BWD_SMALL_C_CONFIGS)
    else:
        seq = [triton_impl._seq_fwd_tuned, triton_impl._seq_bwd_tuned]
        # the wide passes' walks keep one program per tile (triton_seq.prune)
        expected = sum(len(triton_seq.prune(t.configs, {}, WIDE=channels > 4)) for t in seq)
        if channels > 4:
            expected += sum(len(t.configs) for t in (triton_wide._compose_tuned, triton_wide._dots_tuned, triton_wide._feature_tuned))
    trials = autotune_on_cpu.calls
    assert trials == expected  # every candidate of every pass, once
    assert_parity_with_float64(inputs, 37, 21)
    assert autotune_on_cpu.calls == trials  # no new trials: the choices were reused


@pytest.mark.parametrize("seed", range(60))
def test_closed_form_projection_float32_error_is_autograds(seed):
    """In float32, the gradients into means, quats and scales through the closed-form projection
    backward stay as close to float64 as those through autograd's (the STYLE rule: at most twice
    its error plus the float32 floor), on drawn scenes with the compositor's own output gradients.
    The inverse's gradient written as -K G K was up to 100x further off where flat Gaussians are
    seen large."""
    from mnemovision.kernels._testing import assert_kernel_close

    inputs, width, height, kwargs = random_scene(seed)
    kwargs.pop("backgrounds", None)

    def run(dtype, camera_grad):
        leaves = [t.detach().to(dtype).requires_grad_(True) for t in inputs[:5]]
        cameras = [t.detach().to(dtype).requires_grad_(camera_grad) for t in inputs[5:]]  # needing gradients: autograd's stages
        r, a, _ = rasterize_gaussians(*leaves, *cameras, width, height, backend="torch", **kwargs)
        g = torch.Generator().manual_seed(seed)
        loss = (r * torch.randn(r.shape, generator=g, dtype=torch.float64).to(dtype)).sum() + (a * torch.randn(a.shape, generator=g, dtype=torch.float64).to(dtype)).sum()
        if not loss.requires_grad:
            return [torch.zeros_like(t) for t in leaves[:3]]
        return [torch.zeros_like(t) if x is None else x for t, x in zip(leaves[:3], torch.autograd.grad(loss, leaves[:3], allow_unused=True))]

    truth = run(torch.float64, False)
    for name, closed, autograd, want in zip(("means", "quats", "scales"), run(torch.float32, False), run(torch.float32, True), truth):
        assert_kernel_close(closed, autograd, want, f"d{name}")
