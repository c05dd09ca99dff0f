"""Pruning selections, the hooks under a real (tiny) mmengine run, and the compressed export."""

import json
import math
from types import SimpleNamespace

import pytest
import torch

from mnemovision.engine import build_runner, config_type, load_config
from mnemovision.sr.engine import FilterPruneHook, ISSPHook, MagnitudePruneHook
from mnemovision.sr.export import SparseConv2d, load_sr_model, read_sr_file, save_sr_model, to_sparse_inference
from mnemovision.sr.models import build_sr_model
from mnemovision.sr.pruning import layer_sparsity_for, prunable_weights, smallest_filters, smallest_fraction, smallest_n_of_m, soft_shrink, sparsity_of
from mnemovision.vision.checkpoints import load_safetensors, read_safetensors_metadata, save_safetensors
from mnemovision.vision.errors import CheckpointError


def selection_size(n: int, sparsity: float) -> int:
    """How many of a layer's ``n`` weights a per-layer selection takes: ceil(sparsity * n), at most
    floor(0.995 * n) (the ISS-P code's cap, so a layer always keeps some weights)."""
    return min(math.ceil(sparsity * n), int(0.995 * n))


def test_selections():
    w = torch.tensor([[0.5, -0.1, 0.3, -0.9], [0.2, 0.0, -0.7, 0.4]])
    assert smallest_fraction(w, 0.5).tolist() == [[False, True, True, False], [True, True, False, False]]  # 0.0, 0.1, 0.2, 0.3
    assert smallest_n_of_m(w, 1, 4).tolist() == [[False, True, False, False], [False, True, False, False]]
    rows = smallest_filters(torch.stack([w[0], w[0] * 0.1, w[0] * 2]), 0.5)
    assert rows.tolist() == [[True] * 4, [True] * 4, [False] * 4]  # ceil(0.5 * 3) = 2 filters, the smallest L1 norms
    with pytest.raises(ValueError, match="do not split into groups of 3"):
        smallest_n_of_m(w, 1, 3, name="conv.weight")


def test_selection_edges():
    """Ties go by position, every layer keeps some weights, filters rank by L1 and only exact zeros count."""
    ties = torch.full((1000,), -0.5)
    assert smallest_fraction(ties, 0.3).nonzero().flatten().tolist() == list(range(300))
    assert smallest_n_of_m(torch.full((2, 100), 2.0), 3, 100).nonzero()[:, 1].tolist() == [0, 1, 2] * 2
    filters = smallest_filters(torch.ones(200, 3), 0.5)[:, 0]
    assert filters.nonzero().flatten().tolist() == list(range(100))
    assert int(smallest_fraction(torch.randn(1000), 0.999).sum()) == 995  # ceil(999) capped at floor(0.995 n)
    assert int(smallest_filters(torch.randn(4, 3), 0.99)[:, 0].sum()) == 3  # one filter always stays
    l1 = torch.tensor([[1.0, 1.0, 1.0, 1.0], [3.0, 0.0, 0.0, 0.0]])  # L1 4 and 3 (L2 2 and 3)
    assert smallest_filters(l1, 0.5)[:, 0].tolist() == [False, True]
    with pytest.raises(ValueError, match="alpha must be in"):
        soft_shrink({"w": torch.ones(4)}, 0.5, 1.0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.ReLU(), torch.nn.Linear(2, 3))
    assert list(prunable_weights(net)) == ["0.weight", "2.weight"]
    with torch.no_grad():
        net[0].weight.zero_()
        net[2].weight.fill_(1e-6)  # tiny is not zero
    assert sparsity_of(net) == pytest.approx(2 / 8)


def test_smallest_filters_counts():
    w = torch.randn(10, 4, 3, 3)
    rows = smallest_filters(w, 0.9)
    assert int(rows[:, 0, 0, 0].sum()) == 9  # ceil(0.9 * 10)


def test_soft_shrink_scales_only_the_selection():
    net = build_sr_model("edsr", "tiny", 2)
    weights = prunable_weights(net)
    before = {k: v.detach().clone() for k, v in weights.items()}
    chosen = soft_shrink(weights, 0.9, 0.5)
    for name, w in weights.items():
        n = w.numel()
        assert int(chosen[name].sum()) == selection_size(n, 0.9)
        torch.testing.assert_close(w[chosen[name]], before[name][chosen[name]] * 0.5)
        assert torch.equal(w[~chosen[name]], before[name][~chosen[name]])
    assert "body.0.conv1.weight" in weights and not any(k.endswith("bias") for k in weights)


TINY = {"model.size": "tiny", "train_dataloader.batch_size": 4, "train_dataloader.dataset.patch": 12,
        "val_dataloader.dataset.folder": None, "log_level": "ERROR", "default_hooks.logger.interval": 1000}


def tiny_run(work_dir, hook, max_iters=12, resume=False, val_folder=None):
    cfg = load_config("sr_edsr_x2", {**TINY, "train_cfg.max_iters": max_iters, "train_cfg.val_interval": 1000,
                                     "default_hooks.checkpoint.interval": 6, "param_scheduler.0.T_max": 12, "param_scheduler.0.end": 12})
    cfg.custom_hooks = []  # no progress bar in tests
    cfg.custom_hooks.append(hook)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    runner = build_runner(cfg, work_dir=work_dir, resume=resume)
    runner.train()
    return runner


@pytest.mark.parametrize("hook", [
    dict(type=config_type(ISSPHook), sparsity=0.9, alpha=0.9, prune_iters=6),
    dict(type=config_type(MagnitudePruneHook), sparsity=0.9, prune_at=6),
])
def test_hooks_keep_the_requested_sparsity_after_masking(tmp_path, hook):
    runner = tiny_run(tmp_path, hook)
    weights = prunable_weights(runner.model)
    for name, w in weights.items():
        n = w.numel()
        assert int((w == 0).sum()) >= selection_size(n, 0.9) - 1, name  # the mask held through 6 fine-tuning steps
    assert sparsity_of(runner.model) == pytest.approx(0.9, abs=0.01)


def test_skipped_layers_stay_dense_and_the_overall_sparsity_holds(tmp_path):
    skip = ("*conv_first", "*conv_last")
    net = build_sr_model("edsr", "tiny", 2)
    sparsity = layer_sparsity_for(net, 0.8, skip)
    assert 0.8 < sparsity < 0.9
    runner = tiny_run(tmp_path, dict(type=config_type(ISSPHook), sparsity=sparsity, alpha=0.9, prune_iters=6, skip=skip))
    weights = prunable_weights(runner.model)
    for name in ("net.conv_first.weight", "net.conv_last.weight"):
        assert int((weights[name] == 0).sum()) == 0, name
    assert sparsity_of(runner.model) == pytest.approx(0.8, abs=0.01)
    with pytest.raises(ValueError, match="overall sparsity"):
        layer_sparsity_for(net, 0.99, ("*body*",))


def test_issp_shrinks_only_from_shrink_from_and_without_shrinking_is_magnitude_pruning(tmp_path):
    issp = dict(type=config_type(ISSPHook), sparsity=0.9, alpha=0.5, prune_iters=6, shrink_from=6)
    magnitude = dict(type=config_type(MagnitudePruneHook), sparsity=0.9, prune_at=6)
    a = prunable_weights(tiny_run(tmp_path / "issp", issp).model)
    b = prunable_weights(tiny_run(tmp_path / "magnitude", magnitude).model)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
    shrunk = prunable_weights(tiny_run(tmp_path / "shrunk", {**issp, "shrink_from": 3}).model)
    assert any(not torch.equal(shrunk[name], a[name]) for name in a)
    with pytest.raises(ValueError, match="shrink_from"):
        ISSPHook(prune_iters=5, shrink_from=6)


def test_shipped_issp_recipe_is_what_the_bench_trains():
    """The config keeps the image-facing convs dense at 90% overall, holds the LR until the hard mask
    and restarts the cosine over the fine-tuning (the ISS-P code's two stages), with bench/sr.py's
    defaults (shrinkage over 0.4-0.5 of the run at alpha 0.98)."""
    cfg = load_config("sr_edsr_x2_issp90")
    (hook,) = [h for h in cfg.custom_hooks if h["type"] in (ISSPHook, config_type(ISSPHook), "ISSPHook")]
    net = build_sr_model("edsr", "baseline", 2)
    assert hook["sparsity"] == pytest.approx(layer_sparsity_for(net, 0.9, tuple(hook["skip"])), rel=1e-9)
    assert (hook["alpha"], hook["shrink_from"], hook["prune_iters"]) == (0.98, 800, 1000)
    assert tuple(hook["skip"]) == ("*conv_first", "*conv_last")
    (cosine,) = cfg.param_scheduler
    assert (cosine["begin"], cosine["end"], cosine["T_max"]) == (hook["prune_iters"], cfg.train_cfg.max_iters, cfg.train_cfg.max_iters - hook["prune_iters"])


def test_masks_survive_resume_exactly(tmp_path, monkeypatch):
    """The checkpoint holds the masks and weights already masked at the step it was written (the hook
    runs before the checkpoint hook); a resumed run takes the masks from it, never re-selects them,
    and ends where an unbroken run ends."""
    from mnemovision.engine import allow_mmengine_checkpoints

    hook = dict(type=config_type(ISSPHook), sparsity=0.8, alpha=0.9, prune_iters=4)
    full = tiny_run(tmp_path / "full", hook)
    tiny_run(tmp_path / "split", hook, max_iters=6)
    with allow_mmengine_checkpoints():
        checkpoint = torch.load(tmp_path / "split" / "iter_6.pth", weights_only=True)
    masks = checkpoint["pruning_masks"]
    assert set(masks) == set(prunable_weights(full.model))
    for name, mask in masks.items():
        assert not checkpoint["state_dict"][name][~mask].any(), name
        assert int((~mask).sum()) == selection_size(mask.numel(), 0.8), name

    def select_again(self, runner):
        raise AssertionError("a resumed run made new masks")

    monkeypatch.setattr(ISSPHook, "make_masks", select_again)
    resumed = tiny_run(tmp_path / "split", hook, max_iters=12, resume=True)
    for key, value in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


def two_convs(seed=0):
    """Two Conv2d layers (288 and 576 weights, both in groups of 4) with seeded normal weights."""
    net = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3), torch.nn.Conv2d(8, 8, 3))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return net


def runner_at(model, iteration):
    """A stand-in for the runner as the hooks see it: ``iter`` is the steps done at ``before_train``
    and the 0-based index of the step just taken at ``after_train_iter`` (step 3: 2)."""
    return SimpleNamespace(model=model, iter=iteration)


def test_one_shot_hooks_prune_at_their_step_and_apply_loaded_masks_before_training():
    net = two_convs()
    initial = {k: v.detach().clone() for k, v in prunable_weights(net).items()}
    hook = MagnitudePruneHook(sparsity=0.5, prune_at=0)
    hook.before_train(runner_at(net, 0))  # prune_at=0: the initial weights, before any step
    for name, w in prunable_weights(net).items():
        assert torch.equal(hook.masks[name], ~smallest_fraction(initial[name], 0.5)), name
        assert torch.equal(w, initial[name] * hook.masks[name]), name
    later = MagnitudePruneHook(sparsity=0.5, prune_at=3)
    net = two_convs()
    later.before_train(runner_at(net, 0))
    later.after_train_iter(runner_at(net, 1), 1)  # step 2
    assert later.masks is None
    later.after_train_iter(runner_at(net, 2), 2)  # step 3
    assert later.masks is not None and sparsity_of(net) == pytest.approx(0.5, abs=0.01)
    resumed, net = MagnitudePruneHook(sparsity=0.5, prune_at=3), two_convs(seed=1)
    resumed.after_load_checkpoint(runner_at(net, 3), {"pruning_masks": later.masks})
    resumed.before_train(runner_at(net, 3))
    for name, w in prunable_weights(net).items():
        assert not w[~later.masks[name]].any(), name


def test_issp_hook_shrinks_after_shrink_from_with_its_n_m_groups():
    """``shrink_from=2``: step 2 leaves the weights alone, step 3 scales the selection by alpha; with
    n_m=(2, 4) both the shrinkage and the hard mask take 2 of every 4 consecutive weights."""
    net = two_convs()
    hook = ISSPHook(sparsity=0.5, alpha=0.5, prune_iters=5, n_m=(2, 4), shrink_from=2)
    before = {k: v.detach().clone() for k, v in prunable_weights(net).items()}
    hook.after_train_iter(runner_at(net, 1), 1)  # step 2
    assert all(torch.equal(w, before[k]) for k, w in prunable_weights(net).items())
    hook.after_train_iter(runner_at(net, 2), 2)  # step 3
    for name, w in prunable_weights(net).items():
        halved = (w != before[name]).reshape(-1, 4)
        assert halved.sum(1).eq(2).all(), name
        torch.testing.assert_close(w.reshape(-1, 4)[halved], before[name].reshape(-1, 4)[halved] * 0.5, rtol=0, atol=0)
    hook.after_train_iter(runner_at(net, 4), 4)  # step 5: the hard mask
    for name, w in prunable_weights(net).items():
        assert (w.reshape(-1, 4) == 0).sum(1).eq(2).all(), name


def test_hooks_unwrap_model_wrappers_and_refuse_bad_settings():
    """Under a wrapper (DataParallel here; DistributedDataParallel under torchrun) the masks are keyed
    by the model's own names, so checkpoints of one and several processes agree."""
    net = two_convs()
    hook = MagnitudePruneHook(sparsity=0.5, prune_at=0)
    hook.before_train(runner_at(torch.nn.DataParallel(net), 0))
    assert set(hook.masks) == {"0.weight", "1.weight"} and sparsity_of(net) == pytest.approx(0.5, abs=0.01)
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match=f"sparsity must be in \\[0, 1\\), got {bad}"):
            MagnitudePruneHook(sparsity=bad)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\), got 1.0"):
        ISSPHook(alpha=1.0)


def test_filter_pruning_zeroes_whole_filters_and_spares_the_output_convs(tmp_path):
    runner = tiny_run(tmp_path, dict(type=config_type(FilterPruneHook), sparsity=0.5, prune_at=0))
    w = runner.model.net.body[0].conv1.weight
    zero_rows = (w.flatten(1) == 0).all(1)
    assert int(zero_rows.sum()) == 8  # ceil(0.5 * 16) filters
    assert (runner.model.net.conv_last.weight != 0).all()


def test_export_round_trip_is_exact_and_small(tmp_path):
    net = build_sr_model("edsr", "baseline", 2).eval()
    weights = prunable_weights(net)
    with torch.no_grad():
        for w in weights.values():
            w.mul_(~smallest_fraction(w, 0.9))
        next(p for n, p in net.named_parameters() if n.endswith("bias")).zero_()  # a zero bias: stored plain all the same
    dense_path = save_sr_model(tmp_path / "dense.safetensors", build_sr_model("edsr", "baseline", 2), "edsr", "baseline", 2)
    path = save_sr_model(tmp_path / "sparse.safetensors", net, "edsr", "baseline", 2, "iss-p")
    back, meta = load_sr_model(path)
    assert meta["method"] == "iss-p" and float(meta["sparsity"]) == pytest.approx(0.9, abs=1e-3)
    assert meta["sparsity"] == f"{sparsity_of(net):.6f}"  # the model's own figure, to six places
    # weights at most 95% nonzero go as bitmask + values; 1-D tensors (biases) stay plain even when zero
    stored = load_safetensors(path)
    for key, value in net.state_dict().items():
        sparse = value.ndim >= 2 and float((value != 0).float().mean()) <= 0.95
        assert (key in stored) != sparse and (f"{key}.__bitmask" in stored) == sparse, key
    assert any(v.ndim == 1 and not v.any() for v in net.state_dict().values()), "a zero bias, stored plain"
    for key, value in net.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    x = torch.rand(1, 3, 20, 17)
    with torch.no_grad():
        ref = net(x)
        assert torch.equal(back(x), ref)
        sparse = to_sparse_inference(load_sr_model(path)[0])(x)
    torch.testing.assert_close(sparse, ref, atol=1e-5, rtol=1e-5)
    assert path.stat().st_size <= 0.2 * dense_path.stat().st_size


@pytest.mark.parametrize("conv", [
    torch.nn.Conv2d(4, 4, 3, stride=2, padding=1), torch.nn.Conv2d(4, 4, 3, dilation=2, padding=2),
    torch.nn.Conv2d(4, 4, 3, groups=2, padding=1), torch.nn.Conv2d(4, 4, 3, padding="same"),
], ids=["stride", "dilation", "groups", "same-padding"])
def test_sparse_convolution_refuses_what_it_does_not_compute(conv):
    """SparseConv2d computes stride-1, undilated, ungrouped convolutions with numeric padding only."""
    with pytest.raises(ValueError, match="SparseConv2d supports stride 1, dilation 1, groups 1 and numeric padding"):
        SparseConv2d(conv)


def test_bad_model_files_are_named(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="junk.safetensors: not a readable safetensors file"):
        read_sr_file(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="other.safetensors: metadata field 'format'"):
        read_sr_file(tmp_path / "other.safetensors")


def rewrite_metadata(src, dst, **fields) -> None:
    """Copy a safetensors file with some metadata fields replaced (tensors kept)."""
    save_safetensors(dst, load_safetensors(src), {**read_safetensors_metadata(src), **fields})


@pytest.mark.parametrize(
    "shapes, message",
    [
        # Found by mutating the header at random: these raised JSONDecodeError, AttributeError,
        # numpy's UFuncTypeError, or unpacked a mask padded to any size the metadata named.
        ("not json", "'shapes' is not JSON"),
        ("[1, 2]", "'shapes' must map weight names to lists of sizes"),
        ('{"w": ["a"]}', "'shapes' must map weight names to lists of sizes"),
        ('{"w": [99999, 99999]}', r"needs a \d+-byte __bitmask"),
        ('{"w": [true, 3]}', "'shapes' must map weight names to lists of sizes"),  # JSON true is no size
        ('{"w": [2147483648, 1]}', "'shapes' must map weight names to lists of sizes"),
    ],
)
def test_bad_sparse_shapes_are_named(tmp_path, shapes, message):
    net = build_sr_model("edsr", "tiny", 2)
    with torch.no_grad():
        for w in prunable_weights(net).values():
            w.mul_(~smallest_fraction(w, 0.9))
    path = save_sr_model(tmp_path / "sparse.safetensors", net, "edsr", "tiny", 2, "iss-p")
    name = next(iter(json.loads(read_safetensors_metadata(path)["shapes"])))
    rewrite_metadata(path, tmp_path / "bad.safetensors", shapes=shapes.replace('"w"', json.dumps(name)))
    with pytest.raises(CheckpointError, match=f"bad.safetensors: .*{message}"):
        read_sr_file(tmp_path / "bad.safetensors")


def test_sparse_files_refuse_parts_that_disagree_and_half_precision_files_load_as_float32(tmp_path):
    net = build_sr_model("edsr", "tiny", 2).eval()
    with torch.no_grad():
        for w in prunable_weights(net).values():
            w.mul_(~smallest_fraction(w, 0.9))
    path = save_sr_model(tmp_path / "sparse.safetensors", net, "edsr", "tiny", 2, "iss-p")
    meta, tensors = read_safetensors_metadata(path), load_safetensors(path)
    name = next(k[: -len(".__values")] for k in tensors if k.endswith(".__values"))

    def broken(label, **changes):
        edited = {k: v for k, v in tensors.items() if changes.get(k, 0) is not None}
        edited |= {k: v for k, v in changes.items() if v is not None}
        save_safetensors(tmp_path / f"{label}.safetensors", edited, meta)
        return tmp_path / f"{label}.safetensors"

    values = tensors[f"{name}.__values"]
    with pytest.raises(CheckpointError, match=f"short.safetensors: sparse weight '{name}': bitmask has {values.numel()} ones for {values.numel() - 1} values"):
        read_sr_file(broken("short", **{f"{name}.__values": values[:-1]}))
    with pytest.raises(CheckpointError, match=f"nomask.safetensors: sparse weight '{name}' lacks its __bitmask or __values"):
        read_sr_file(broken("nomask", **{f"{name}.__bitmask": None}))
    wide = tensors[f"{name}.__bitmask"].to(torch.int16)
    with pytest.raises(CheckpointError, match=f"int16mask.safetensors: sparse weight '{name}': expected a 1-D uint8 __bitmask and 1-D __values, found torch.int16"):
        read_sr_file(broken("int16mask", **{f"{name}.__bitmask": wide}))
    dense_name = next(k for k in tensors if k.endswith("bias"))
    with pytest.raises(CheckpointError, match=f"nobias.safetensors: does not match .*missing keys \\(1\\): {dense_name}"):
        load_sr_model(broken("nobias", **{dense_name: None}))
    half = save_sr_model(tmp_path / "half.safetensors", net, "edsr", "tiny", 2, "iss-p", dtype=torch.float16)
    assert half.stat().st_size < 0.75 * path.stat().st_size and read_safetensors_metadata(half)["dtype"] == "torch.float16"
    back, _ = load_sr_model(half)
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert all(p.dtype == torch.float32 for p in back.parameters())
        torch.testing.assert_close(back(x), net(x), atol=2e-2, rtol=0)  # weights rounded to float16
        sparse = to_sparse_inference(load_sr_model(path)[0])
        assert sum(isinstance(m, SparseConv2d) for m in sparse.modules()) >= 4  # the 90%-sparse body convs
        torch.testing.assert_close(sparse(x), net(x), atol=1e-5, rtol=1e-5)


class WithBuffers(torch.nn.Module):
    """A weight exactly 95% nonzero, a sparse integer table and a 50%-sparse and a dense convolution."""

    def __init__(self):
        super().__init__()
        self.at_limit = torch.nn.Parameter(torch.arange(1.0, 21.0).reshape(4, 5))
        with torch.no_grad():
            self.at_limit[0, 0] = 0.0  # 19 of 20 nonzero
        self.register_buffer("table", torch.eye(8, dtype=torch.int64) * 3000)  # 3000 is not a float16
        self.sparse_conv, self.dense_conv = torch.nn.Conv2d(2, 2, 3, padding=1), torch.nn.Conv2d(2, 2, 3, padding=1)
        with torch.no_grad():
            self.sparse_conv.weight.view(-1)[::2] = 0.0


def test_only_floating_weights_at_most_95_percent_dense_go_sparse_and_integers_keep_their_type(tmp_path):
    net = WithBuffers()
    path = save_sr_model(tmp_path / "b.safetensors", net, "edsr", "tiny", 2, dtype=torch.float16)
    stored = load_safetensors(path)
    assert "at_limit.__bitmask" in stored and "at_limit" not in stored  # 95% exactly is sparse
    assert stored["table"].dtype == torch.int64 and "table.__bitmask" not in stored  # 7/8 zeros, but not a float weight
    state, _ = read_sr_file(path)
    assert torch.equal(state["table"], net.table)
    converted = to_sparse_inference(net, max_density=0.5)
    assert isinstance(converted.sparse_conv, SparseConv2d) and type(converted.dense_conv) is torch.nn.Conv2d


def test_a_file_naming_an_unknown_architecture_is_a_checkpoint_error(tmp_path):
    path = save_sr_model(tmp_path / "a.safetensors", build_sr_model("edsr", "tiny", 2), "edsr", "tiny", 2)
    rewrite_metadata(path, tmp_path / "other.safetensors", arch="unet")
    with pytest.raises(CheckpointError, match="other.safetensors: metadata does not name a buildable model .arch/size/scale.: arch must be one of"):
        load_sr_model(tmp_path / "other.safetensors")


def test_sparsity_counts_exact_zeros_only_and_n_of_m_needs_0_lt_n_lt_m():
    net = torch.nn.Sequential(torch.nn.Linear(4, 4, bias=False))
    with torch.no_grad():
        net[0].weight.fill_(1e-9)  # tiny, not pruned
        net[0].weight[0] = 0.0
    assert sparsity_of(net) == 0.25
    assert sparsity_of(torch.nn.Sequential(torch.nn.ReLU())) == 0.0  # nothing prunable: no division by zero
    for n, m in ((0, 4), (4, 4), (5, 4)):
        with pytest.raises(ValueError, match=f"N:M selection needs 0 < n < m, got {n}:{m}"):
            smallest_n_of_m(torch.ones(8), n, m)
