"""EDSR and SwinIR-light: shapes, sizes, and the official checkpoint layouts as named conversions."""

import pytest
import torch

from mnemovision.sr.models import build_sr_model, convert_official_edsr, convert_official_swinir
from mnemovision.sr.models.swinir import relative_position_index, shift_mask, window_merge, window_partition
from mnemovision.vision.checkpoints import load_state_dict_strict
from mnemovision.vision.errors import CheckpointError


@pytest.mark.parametrize("arch,size", [("edsr", "tiny"), ("swinir", "tiny")])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_shapes_for_unaligned_inputs(arch, size, scale):
    net = build_sr_model(arch, size, scale).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 13, 10))
    assert out.shape == (2, 3, 13 * scale, 10 * scale) and torch.isfinite(out).all()


def test_published_sizes():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(build_sr_model("edsr", "baseline", 2)) == 1_369_859  # EDSR paper: 1.37M (x2 baseline)
    assert 40e6 < count(build_sr_model("edsr", "large", 2)) < 41e6  # 40.7M
    assert 0.85e6 < count(build_sr_model("swinir", "light", 2)) < 0.95e6  # SwinIR-light ~0.9M
    with pytest.raises(ValueError, match="scale must be 2, 3 or 4"):
        build_sr_model("edsr", "tiny", 5)


def official_edsr_layout(net, num_blocks):
    """A state dict in EDSR-PyTorch's key layout, built from ``net``'s weights (what its checkpoints hold)."""
    sd = net.state_dict()
    out = {"sub_mean.weight": torch.eye(3).view(3, 3, 1, 1), "sub_mean.bias": -255 * torch.tensor([0.4488, 0.4371, 0.4040]),
           "add_mean.weight": torch.eye(3).view(3, 3, 1, 1), "add_mean.bias": 255 * torch.tensor([0.4488, 0.4371, 0.4040])}
    for kind in ("weight", "bias"):
        out[f"head.0.{kind}"] = sd[f"conv_first.{kind}"]
        for i in range(num_blocks):
            out[f"body.{i}.body.0.{kind}"] = sd[f"body.{i}.conv1.{kind}"]
            out[f"body.{i}.body.2.{kind}"] = sd[f"body.{i}.conv2.{kind}"]
        out[f"body.{num_blocks}.{kind}"] = sd[f"conv_after_body.{kind}"]
        out[f"tail.0.0.{kind}"] = sd[f"upsample.0.{kind}"]
        out[f"tail.0.2.{kind}"] = sd[f"upsample.2.{kind}"]
        out[f"tail.1.{kind}"] = sd[f"conv_last.{kind}"]
    return out


def test_official_edsr_checkpoint_converts_and_loads_strictly():
    source = build_sr_model("edsr", "baseline", 4)
    official = official_edsr_layout(source, 16)
    assert len(official) == 4 + 2 * (1 + 2 * 16 + 1 + 2 + 1)
    target = build_sr_model("edsr", "baseline", 4)
    load_state_dict_strict(target, convert_official_edsr(official, num_blocks=16))
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(target(x), source(x))
    bad = dict(official, **{"sub_mean.bias": torch.zeros(3)})
    with pytest.raises(ValueError, match="sub_mean.bias: mean shift"):
        convert_official_edsr(bad, 16)
    with pytest.raises(KeyError, match="tail.7.weight: not a key"):
        convert_official_edsr(dict(official, **{"tail.7.weight": torch.zeros(1)}), 16)


def test_official_swinir_light_checkpoint_converts_and_loads_strictly():
    source = build_sr_model("swinir", "light", 2)
    state = source.state_dict()
    # Official key names, spot-checked, plus the buffers the official code saves.
    for key in ("conv_first.weight", "patch_embed.norm.weight", "layers.3.residual_group.blocks.5.attn.relative_position_bias_table",
                "layers.0.residual_group.blocks.0.attn.qkv.weight", "layers.2.residual_group.blocks.1.mlp.fc2.bias",
                "layers.1.conv.weight", "norm.bias", "conv_after_body.weight", "upsample.0.weight"):
        assert key in state, key
    assert state["upsample.0.weight"].shape == (12, 60, 3, 3) and state["layers.0.residual_group.blocks.0.attn.relative_position_bias_table"].shape == (225, 6)
    official = dict(state)
    for i in range(4):
        for j in range(6):
            official[f"layers.{i}.residual_group.blocks.{j}.attn.relative_position_index"] = relative_position_index(8)
            if j % 2:
                official[f"layers.{i}.residual_group.blocks.{j}.attn_mask"] = shift_mask(64, 64, 8, 4)
    target = build_sr_model("swinir", "light", 2)
    load_state_dict_strict(target, convert_official_swinir({"params": official}))
    x = torch.rand(1, 3, 12, 9)
    with torch.no_grad():
        assert torch.equal(target(x), source(x))
    with pytest.raises(CheckpointError, match="missing"):
        load_state_dict_strict(target, convert_official_swinir({"params": {k: v for k, v in official.items() if k != "norm.bias"}}))


def test_window_helpers():
    x = torch.arange(2 * 8 * 8 * 3, dtype=torch.float32).view(2, 8, 8, 3)
    windows = window_partition(x, 4)
    assert windows.shape == (8, 16, 3) and torch.equal(window_merge(windows, 4, 2, 8, 8), x)
    index = relative_position_index(4)
    assert index.shape == (16, 16) and index.max() == 48 and torch.all(index.diagonal() == 24)
    mask = shift_mask(8, 8, 4, 2)
    assert mask.shape == (4, 16, 16) and (mask[0] == 0).all() and (mask[-1] == -100).any()


def test_edsr_computes_the_published_network_from_its_weights():
    """EDSR written out from the paper with functional ops on the module's own weights: shift by the
    DIV2K mean and scale to [0, 255], head conv, residual blocks x + s * conv(relu(conv(x))), a conv
    after the body plus the global skip, conv + pixel shuffle per factor of 2, tail conv, undo."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    net = build_sr_model("edsr", "tiny", 4)
    for block in net.body:
        block.res_scale = 0.3  # a scale other than 1, so that it is seen
    w = net.state_dict()
    conv = lambda x, name: F.conv2d(x, w[f"{name}.weight"], w[f"{name}.bias"], padding=1)  # noqa: E731
    mean = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1)
    x = torch.rand(2, 3, 7, 5)
    head = conv((x - mean) * 255.0, "conv_first")
    body = head
    for i in range(2):
        body = body + 0.3 * conv(torch.relu(conv(body, f"body.{i}.conv1")), f"body.{i}.conv2")
    up = conv(body, "conv_after_body") + head
    for j in (0, 2):  # x4 = two stages of conv + PixelShuffle(2)
        up = F.pixel_shuffle(conv(up, f"upsample.{j}"), 2)
    want = conv(up, "conv_last") / 255.0 + mean
    with torch.no_grad():
        got = net(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    three = build_sr_model("edsr", "tiny", 3)  # x3: one conv to 9x the features and PixelShuffle(3)
    assert [type(m).__name__ for m in three.upsample] == ["Conv2d", "PixelShuffle"]
    assert three.upsample[0].out_channels == 9 * 16 and three.upsample[1].upscale_factor == 3
    sizes = {size: (len(m.body), m.conv_first.out_channels, m.body[0].res_scale) for size in ("tiny", "baseline", "large") for m in [build_sr_model("edsr", size, 2)]}
    assert sizes == {"tiny": (2, 16, 1.0), "baseline": (16, 64, 1.0), "large": (32, 256, 0.1)}  # EDSR paper: res_scale 0.1 for the large model


def test_window_attention_adds_the_relative_position_bias_of_each_pair():
    """With q = k = 0 the logits are the bias alone; v = x and an identity projection make the output
    softmax(bias) @ x. The table index of (query i, key j) in a 2 x 2 window, worked out by hand:
    (dy + 1) * 3 + (dx + 1) for the offset (dy, dx) = coords_i - coords_j."""
    from mnemovision.sr.models.swinir import WindowAttention

    attn = WindowAttention(dim=2, window=2, heads=1).double()
    with torch.no_grad():
        attn.qkv.weight.zero_()
        attn.qkv.bias.zero_()
        attn.qkv.weight[4:6] = torch.eye(2)  # the v rows
        attn.proj.weight.copy_(torch.eye(2))
        attn.proj.bias.zero_()
        attn.relative_position_bias_table.copy_(torch.arange(9, dtype=torch.float64).view(9, 1) * 0.7)
    index = torch.tensor([[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]])
    assert torch.equal(relative_position_index(2), index)
    x = torch.randn(3, 4, 2, dtype=torch.float64)
    with torch.no_grad():
        got = attn(x, None)
    torch.testing.assert_close(got, torch.softmax(index.double() * 0.7, dim=-1) @ x)


def _receptive_field(block, pixel, size=8):
    """The input pixels of an [size x size] grid that the block's output at ``pixel`` depends on."""
    x = torch.randn(1, size * size, block.norm1.normalized_shape[0], dtype=torch.float64, requires_grad=True)
    mask = shift_mask(size, size, block.window, block.window // 2).double()  # SwinIR hands it to every block; unshifted ones ignore it
    y = block(x, (size, size), mask)
    (grad,) = torch.autograd.grad(y[0, pixel[0] * size + pixel[1]].sum(), x)
    touched = (grad.abs().sum(-1) > 1e-30).view(size, size)
    return {(int(r), int(c)) for r, c in touched.nonzero()}


def test_shifted_windows_attend_within_the_cyclically_shifted_window_and_its_region():
    """Swin blocks of window 4 on an 8 x 8 grid. Unshifted, a pixel attends to its own 4 x 4 window.
    Shifted by 2 (the grid rolled by -2), the window around pixel (3, 3) covers rows and columns 2-5;
    the window around (0, 0) wraps around the corner, and the mask keeps it to the 2 x 2 block of
    pixels that really neighbour it, not the wrapped-in rows and columns 6-7."""
    from mnemovision.sr.models.swinir import SwinBlock

    torch.manual_seed(0)
    square = lambda rows, cols: {(r, c) for r in rows for c in cols}  # noqa: E731
    plain = SwinBlock(dim=8, heads=2, window=4, shift=0, mlp_ratio=2.0).double()
    assert _receptive_field(plain, (3, 3)) == square(range(4), range(4))
    assert _receptive_field(plain, (5, 2)) == square(range(4, 8), range(4))
    shifted = SwinBlock(dim=8, heads=2, window=4, shift=2, mlp_ratio=2.0).double()
    assert _receptive_field(shifted, (3, 3)) == square(range(2, 6), range(2, 6))
    assert _receptive_field(shifted, (0, 0)) == square(range(2), range(2))
    assert _receptive_field(shifted, (7, 3)) == square(range(6, 8), range(2, 6))


def test_swin_blocks_alternate_shifts_and_keep_their_residual_paths():
    from mnemovision.sr.models.swinir import RSTB, SwinBlock

    light = build_sr_model("swinir", "light", 2)
    assert [[block.shift for block in layer.residual_group.blocks] for layer in light.layers] == [[0, 4, 0, 4, 0, 4]] * 4
    torch.manual_seed(0)
    block = SwinBlock(dim=8, heads=2, window=4, shift=2, mlp_ratio=2.0).double()
    rstb = RSTB(dim=8, depth=2, heads=2, window=4, mlp_ratio=2.0).double()
    with torch.no_grad():
        for b in (block, *rstb.residual_group.blocks):  # both branches of every block output zero ...
            for layer in (b.attn.proj, b.mlp.fc2):
                layer.weight.zero_()
                layer.bias.zero_()
        rstb.conv.weight.zero_()
        rstb.conv.bias.zero_()
        x = torch.randn(2, 64, 8, dtype=torch.float64)
        mask = shift_mask(8, 8, 4, 2).double()
        assert torch.equal(block(x, (8, 8), mask), x)  # ... so each block is its skip connections
        assert torch.equal(rstb(x, (8, 8), mask), x)  # and the group is its own


def test_swinir_computes_the_published_network_from_its_weights():
    """SwinIR-light's forward written out around its (separately tested) Swin blocks: reflect-pad to
    the window, shift by the DIV2K mean, conv, LayerNorm'd tokens, per RSTB the blocks (masked when
    shifted) then a 3x3 conv on the grid plus the RSTB's input, LayerNorm, a conv after the body plus
    the global skip, conv + pixel shuffle, undo the shift, crop."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    net = build_sr_model("swinir", "tiny", 3).eval()
    net.layers.append(type(net.layers[0])(12, 2, 2, 4, 2.0))  # two RSTBs, so that each one's skip is seen
    net.layers[1].residual_group.blocks[1].shift = 2
    with torch.no_grad():
        for p in net.parameters():  # away from the init: LayerNorm affine and biases non-trivial
            p.add_(0.05 * torch.randn_like(p))
    w = net.state_dict()
    conv = lambda x, name: F.conv2d(x, w[f"{name}.weight"], w[f"{name}.bias"], padding=1)  # noqa: E731
    norm = lambda t, name: F.layer_norm(t, (12,), w[f"{name}.weight"], w[f"{name}.bias"])  # noqa: E731
    mean = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1)
    x = torch.rand(2, 3, 7, 6)
    padded = F.pad(x, (0, 2, 0, 1), mode="reflect")  # to 8 x 8
    feat = conv(padded - mean, "conv_first")
    tokens = norm(feat.flatten(2).transpose(1, 2), "patch_embed.norm")
    mask = shift_mask(8, 8, 4, 2)
    with torch.no_grad():
        for layer in net.layers:
            y = tokens
            for block in layer.residual_group.blocks:
                y = block(y, (8, 8), mask)
            grid = y.transpose(1, 2).reshape(2, 12, 8, 8)
            tokens = F.conv2d(grid, layer.conv.weight, layer.conv.bias, padding=1).flatten(2).transpose(1, 2) + tokens
        body = norm(tokens, "norm").transpose(1, 2).reshape(2, 12, 8, 8)
        up = F.pixel_shuffle(conv(conv(body, "conv_after_body") + feat, "upsample.0"), 3)
        want = (up + mean)[..., :21, :18]
        got = net(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_swinir_starts_from_the_vit_initialisation_and_refuses_mismatched_stages():
    torch.manual_seed(0)
    net = build_sr_model("swinir", "light", 2)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    weights = torch.cat([m.weight.detach().flatten() for m in linears])
    assert abs(float(weights.std()) - 0.02) < 0.0005  # torch's default for these layers: std 1 / sqrt(3 fan_in), 0.075 at 60
    assert all(not m.bias.any() for m in linears)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) and not m.bias.any() for m in norms)
    from mnemovision.sr.models.swinir import SwinIR

    with pytest.raises(ValueError, match=r"depths and heads must have the same length, got \(2, 2\) and \(2,\)"):
        SwinIR(2, embed=12, depths=(2, 2), heads=(2,), window=4)


def test_official_swinir_files_give_their_ema_weights_when_they_hold_both():
    plain, ema = {"w": torch.zeros(1)}, {"w": torch.ones(1)}
    assert convert_official_swinir({"params": plain, "params_ema": ema}) == ema
    assert convert_official_swinir({"params": plain}) == plain and convert_official_swinir(plain) == plain


def test_edsr_conversion_needs_the_right_block_count_and_upsamplers_come_in_powers_of_two():
    from mnemovision.sr.models.edsr import pixel_shuffle_upsampler

    official = official_edsr_layout(build_sr_model("edsr", "tiny", 4), 2)
    with pytest.raises(KeyError, match="body.2.weight: not a key of the official EDSR layout"):
        convert_official_edsr(official, num_blocks=3)  # body.2 is the conv after the body of a 2-block file
    assert [type(m).__name__ for m in pixel_shuffle_upsampler(8, 8)] == ["Conv2d", "PixelShuffle"] * 3
    with pytest.raises(ValueError, match="scale must be 2, 3, 4 or 8, got 6"):
        pixel_shuffle_upsampler(8, 6)
