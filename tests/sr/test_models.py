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
