"""JointFormer's parts against references written from the paper's notes (``../shared/research/vos.md``
section 1) with plain tensor ops in float64 on each module's own (randomised) weights: ConvMAE's patch
embedding and conv block, the ViT block in its three attention patterns (self, compressed token over
[token ; frame], query over [own tokens ; top-k memory] in one softmax), the sigmoid-gated read of the
token, XMem's decoder parts, and how the network wires them (which tokens are cached, which memory each
layer reads, where position embeddings and the final LayerNorm go)."""

import math

import pytest
import torch
import torch.nn.functional as F

from mnemovision.vos.models import build_jointformer
from mnemovision.vos.models.jointformer import CBAM, Block, CBlock, Decoder, PatchEmbed, ResBlock, UpBlock, sincos_pos_embed
from tests.vision.test_layers import exact_gelu as gelu

TOL = dict(rtol=1e-10, atol=1e-10)


def randomized(module, seed=0):
    """``module`` in float64 with every parameter drawn at random (the default init has zero biases and
    unit LayerNorms, under which several wiring mistakes change nothing)."""
    gen = torch.Generator().manual_seed(seed)
    module = module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.4)
    return module.eval()


def layer_norm(x, norm, eps):
    """LayerNorm over the last axis with ``norm``'s affine parameters and the given eps."""
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * norm.weight + norm.bias


def channel_norm(x, norm, eps=1e-5):
    """LayerNorm over the channels of a [B, C, H, W] map."""
    return layer_norm(x.permute(0, 2, 3, 1), norm, eps).permute(0, 3, 1, 2)


def linear(x, layer):
    return x @ layer.weight.T + layer.bias


def conv(x, layer, **kw):
    return F.conv2d(x, layer.weight, layer.bias, **kw)


# --------------------------------------------------------------------------- ConvMAE stages
def test_sincos_position_embedding_by_hand():
    """dim 8: two frequencies 1 and 1/100 (10000 ** (-j / 2)); [sin x, cos x, sin y, cos y] per token."""
    pe = sincos_pos_embed(2, 3, 8)
    assert pe.shape == (1, 6, 8)
    y, x = 1, 2  # token 5 of the row-major 2 x 3 grid
    want = [math.sin(x), math.sin(x / 100), math.cos(x), math.cos(x / 100), math.sin(y), math.sin(y / 100), math.cos(y), math.cos(y / 100)]
    torch.testing.assert_close(pe[0, y * 3 + x].double(), torch.tensor(want, dtype=torch.float64), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="divisible by 4, got 6"):
        sincos_pos_embed(2, 2, 6)


def test_patch_embedding_is_strided_conv_channel_layernorm_and_exact_gelu():
    embed = randomized(PatchEmbed(5, 8, 4))
    assert embed.proj.weight.shape == (8, 5, 4, 4)
    x = torch.randn(2, 5, 16, 12, dtype=torch.float64)
    want = gelu(channel_norm(conv(x, embed.proj, stride=4), embed.norm))
    torch.testing.assert_close(embed(x), want, **TOL)


def test_conv_block_is_depthwise_5x5_attention_then_conv_mlp_each_with_a_skip():
    blk = randomized(CBlock(6, mlp_ratio=2.0))
    assert blk.attn.weight.shape == (6, 1, 5, 5) and blk.mlp.fc1.weight.shape == (12, 6, 1, 1)
    x = torch.randn(2, 6, 7, 9, dtype=torch.float64)
    mixed = conv(channel_norm(x, blk.norm1), blk.conv1)
    x1 = x + conv(conv(mixed, blk.attn, padding=2, groups=6), blk.conv2)
    want = x1 + conv(gelu(conv(channel_norm(x1, blk.norm2), blk.mlp.fc1)), blk.mlp.fc2)
    torch.testing.assert_close(blk(x), want, **TOL)


# --------------------------------------------------------------------------- the ViT block's attention patterns
HEADS, DIM = 2, 8


def project(blk, x):
    """q, k, v [B, heads, N, dim / heads] of ``x`` [B, N, C] after norm1, in timm's qkv layout: rows
    [q of all heads ; k ; v] of ``qkv``, each head a contiguous slice of C / heads channels."""
    out = linear(layer_norm(x, blk.norm1, 1e-6), blk.attn.qkv)
    b, n, _ = x.shape
    parts = out.split(DIM, dim=-1)
    return [p.reshape(b, n, HEADS, DIM // HEADS).transpose(1, 2) for p in parts]


def finish(blk, x, heads_out):
    """Heads concatenated, output projection, residual; then the pre-LN MLP with its residual."""
    b, h, n, d = heads_out.shape
    x = x + linear(heads_out.transpose(1, 2).reshape(b, n, h * d), blk.attn.proj)
    return x + linear(gelu(linear(layer_norm(x, blk.norm2, 1e-6), blk.mlp.fc1)), blk.mlp.fc2)


def attend(q, k, v):
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1) @ v


@pytest.fixture
def block():
    return randomized(Block(DIM, HEADS, mlp_ratio=2.0), seed=1)


def test_block_layer_norms_use_eps_1e_6(block):
    assert block.norm1.eps == 1e-6 and block.norm2.eps == 1e-6


def test_self_attention_block(block):
    x = torch.randn(2, 5, DIM, dtype=torch.float64)
    torch.testing.assert_close(block.self_attend(x), finish(block, x, attend(*project(block, x))), **TOL)


def test_compressed_token_attends_to_itself_and_the_frame_in_one_softmax(block):
    token, frame = torch.randn(2, 1, DIM, dtype=torch.float64), torch.randn(2, 6, DIM, dtype=torch.float64)
    q, _, _ = project(block, token)
    _, k, v = project(block, torch.cat([token, frame], 1))
    out = block.token_attend(token, frame)
    assert out.shape == (2, 1, DIM)
    torch.testing.assert_close(out, finish(block, token, attend(q, k, v)), **TOL)


@pytest.mark.parametrize("top_k", [None, 1, 3])
def test_query_reads_own_tokens_densely_and_top_k_memory_in_one_softmax(block, top_k):
    x, memory = torch.randn(1, 5, DIM, dtype=torch.float64), torch.randn(1, 7, DIM, dtype=torch.float64)
    q, k, v = project(block, x)
    _, km, vm = project(block, memory)
    scale = 1 / math.sqrt(DIM // HEADS)
    own, mem = q @ k.transpose(-2, -1) * scale, q @ km.transpose(-2, -1) * scale
    if top_k is not None:  # per query, only the k largest memory logits survive; all own tokens do
        kth = mem.topk(top_k, dim=-1).values[..., -1:]
        mem = mem.masked_fill(mem < kth, float("-inf"))
    weights = torch.softmax(torch.cat([own, mem], -1), -1)
    want = finish(block, x, weights[..., :5] @ v + weights[..., 5:] @ vm)
    torch.testing.assert_close(block.joint_read(x, memory, top_k), want, **TOL)


def test_query_without_memory_is_plain_self_attention(block):
    x = torch.randn(1, 4, DIM, dtype=torch.float64)
    torch.testing.assert_close(block.joint_read(x, None, 3), block.self_attend(x), **TOL)
    torch.testing.assert_close(block.joint_read(x, x[:, :0], None), block.self_attend(x), **TOL)


def test_enhancement_gates_the_token_value_with_a_per_head_sigmoid(block):
    x, token = torch.randn(2, 5, DIM, dtype=torch.float64), torch.randn(2, 1, DIM, dtype=torch.float64)
    q, _, _ = project(block, x)
    _, kt, vt = project(block, token)
    gate = torch.sigmoid(q @ kt.transpose(-2, -1) / math.sqrt(DIM // HEADS))  # [B, heads, N, 1]
    torch.testing.assert_close(block.gated_read(x, token), finish(block, x, gate * vt), **TOL)


# --------------------------------------------------------------------------- XMem's decoder parts
def ref_resblock(blk, x):
    y = conv(F.relu(conv(F.relu(x), blk.conv1, padding=1)), blk.conv2, padding=1)
    return y + (x if blk.downsample is None else conv(x, blk.downsample))


@pytest.mark.parametrize("widths", [(6, 6), (6, 4)])
def test_res_block_has_relu_before_each_conv_and_a_1x1_skip_only_when_the_width_changes(widths):
    blk = randomized(ResBlock(*widths))
    assert (blk.downsample is None) == (widths[0] == widths[1])
    x = torch.randn(2, widths[0], 5, 6, dtype=torch.float64)
    torch.testing.assert_close(blk(x), ref_resblock(blk, x), **TOL)


def ref_cbam(blk, x):
    def mlp(t):
        return linear(F.relu(linear(t, blk.mlp[0])), blk.mlp[2])

    x = x * torch.sigmoid(mlp(x.mean((2, 3))) + mlp(x.amax((2, 3))))[..., None, None]
    maps = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)  # channel mean first, then max
    return x * torch.sigmoid(conv(maps, blk.spatial, padding=3))


def test_cbam_channel_then_spatial_attention():
    assert CBAM(384).mlp[0].out_features == 24 and CBAM(48).mlp[0].out_features == 4  # ch / 16, at least 4
    blk = randomized(CBAM(32))
    assert blk.spatial.weight.shape == (1, 2, 7, 7)
    x = torch.randn(2, 32, 6, 5, dtype=torch.float64)
    torch.testing.assert_close(blk(x), ref_cbam(blk, x), **TOL)


def ref_upblock(blk, skip, coarse):
    up = F.interpolate(coarse, size=skip.shape[-2:], mode="bilinear", align_corners=False)
    return ref_resblock(blk.out_conv, conv(skip, blk.skip_conv, padding=1) + up)


def test_up_block_adds_the_bilinearly_upsampled_coarse_map_to_the_skip_conv():
    blk = randomized(UpBlock(3, 5, 4))
    skip, coarse = torch.randn(1, 3, 8, 6, dtype=torch.float64), torch.randn(1, 5, 4, 3, dtype=torch.float64)
    torch.testing.assert_close(blk(skip, coarse), ref_upblock(blk, skip, coarse), **TOL)


def test_decoder_fuses_f16_with_the_enhanced_map_and_returns_logits_and_fusion():
    dims, widths = (4, 6, 12), (8, 6, 5)
    dec = randomized(Decoder(dims, widths))
    f16, enh = torch.randn(1, 12, 2, 3, dtype=torch.float64), torch.randn(1, 12, 2, 3, dtype=torch.float64)
    f8, f4 = torch.randn(1, 6, 4, 6, dtype=torch.float64), torch.randn(1, 4, 8, 12, dtype=torch.float64)
    f16.requires_grad_(True)
    g = ref_resblock(dec.fuser_16["block1"], torch.cat([f16, enh], 1))  # f16 first
    g16 = ref_resblock(dec.fuser_16["block2"], g + ref_cbam(dec.fuser_16["attention"], g))  # CBAM as a residual
    g8 = ref_upblock(dec.up_16_8, f8, g16)
    g4 = ref_upblock(dec.up_8_4, f4, g8)
    logits = conv(F.relu(g4), dec.pred, padding=1)
    fusion = torch.cat([conv(g16, dec.fuser_all["g16"]), conv(F.adaptive_avg_pool2d(g8, (2, 3)), dec.fuser_all["g8"]),
                        conv(F.adaptive_avg_pool2d(torch.cat([g4, logits], 1), (2, 3)), dec.fuser_all["g4"])], 1)
    got_logits, got_fusion = dec(f16, enh, f8, f4)
    assert got_logits.shape == (1, 1, 8, 12) and got_fusion.shape == (1, 12, 2, 3)  # 4 + 4 + (12 - 8) channels
    torch.testing.assert_close(got_logits, logits, **TOL)
    torch.testing.assert_close(got_fusion, fusion, **TOL)
    # the logits reach f16 through every stage (none is cut from the graph)
    torch.testing.assert_close(torch.autograd.grad(got_logits.sum(), f16)[0], torch.autograd.grad(logits.sum(), f16)[0], **TOL)


# --------------------------------------------------------------------------- the network's wiring
@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return randomized(build_jointformer("tiny"), seed=2)


def test_conv_stages_feed_f4_and_f8_on_and_add_the_sincos_embedding_to_the_tokens(net):
    image = torch.randn(1, 3, 32, 48, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    assert len(net.blocks1) == len(net.blocks2) == 1  # the tiny size
    f4 = net.blocks1[0](net.patch_embed1_query(image))
    f8 = net.blocks2[0](net.patch_embed2(f4))
    grid = net.patch_embed3(f8)
    tokens = linear(grid.flatten(2).transpose(1, 2), net.patch_embed4) + sincos_pos_embed(2, 3, 96).double()
    with torch.no_grad():
        got = net._conv_stages(image, net.patch_embed1_query)
    for a, b in zip(got, (f4, f8, tokens)):
        torch.testing.assert_close(a, b, **TOL)


def final_norm(net, x):
    return layer_norm(x, net.norm, 1e-6)


def test_memory_encoding_caches_each_layers_input_and_the_token_rides_along(net):
    gen = torch.Generator().manual_seed(3)
    image, masks = torch.randn(1, 3, 32, 48, generator=gen, dtype=torch.float64), torch.rand(1, 2, 32, 48, generator=gen, dtype=torch.float64)
    token = torch.randn(1, 1, 96, generator=gen, dtype=torch.float64)
    _, _, x = net._conv_stages(torch.cat([image, masks], 1), net.patch_embed1_memory)  # pinned above
    want_cache = []
    want_token = token
    for blk in net.blocks3:
        want_cache.append(x)  # the memory of layer i is the frame's tokens *before* layer i
        want_token = blk.token_attend(want_token, x)
        x = blk.self_attend(x)  # per-frame self-attention: the frame never sees the token
    with torch.no_grad():
        cache, new_token = net.encode_memory(image, masks, token)
        other_cache, _ = net.encode_memory(image, masks, token * 0)
    assert len(cache) == 3
    for got, want, other in zip(cache, want_cache, other_cache):
        torch.testing.assert_close(got, want, **TOL)
        torch.testing.assert_close(other, got, **TOL)  # the cache does not depend on the token
    torch.testing.assert_close(new_token, final_norm(net, want_token), **TOL)


def test_query_layer_i_reads_layer_i_memory_and_ends_with_the_final_norm(net):
    gen = torch.Generator().manual_seed(4)
    image = torch.randn(1, 3, 32, 32, generator=gen, dtype=torch.float64)
    memory = [torch.randn(1, 10, 96, generator=gen, dtype=torch.float64) for _ in range(3)]
    f4, f8, x = net._conv_stages(image, net.patch_embed1_query)
    for blk, mem in zip(net.blocks3, memory):
        x = blk.joint_read(x, mem, 4)
    with torch.no_grad():
        got = net.read(image, memory, top_k=4)
    torch.testing.assert_close(got[0], f4, **TOL)
    torch.testing.assert_close(got[1], f8, **TOL)
    torch.testing.assert_close(got[2], final_norm(net, x), **TOL)
    assert got[3] == (2, 2)


def test_segment_enhances_f16_with_the_token_decodes_and_upsamples_the_logits_4x(net):
    gen = torch.Generator().manual_seed(5)
    f4, f8 = torch.randn(1, 32, 8, 12, generator=gen, dtype=torch.float64), torch.randn(1, 48, 4, 6, generator=gen, dtype=torch.float64)
    f16, token = torch.randn(1, 6, 96, generator=gen, dtype=torch.float64), torch.randn(1, 1, 96, generator=gen, dtype=torch.float64)
    enhanced = linear(f16, net.patch_embed4_block5) + sincos_pos_embed(2, 3, 96).double()
    enhanced = final_norm(net, net.blocks5[0].gated_read(enhanced, token))
    to_map = lambda t: t.transpose(1, 2).reshape(1, 96, 2, 3)  # noqa: E731
    logits, fusion = net.decoder(to_map(f16), to_map(enhanced), f8, f4)
    with torch.no_grad():
        got_logits, got_fusion = net.segment(f4, f8, f16, (2, 3), token)
    torch.testing.assert_close(got_logits, F.interpolate(logits, size=(32, 48), mode="bilinear", align_corners=False), **TOL)
    torch.testing.assert_close(got_fusion, fusion, **TOL)


def test_token_update_attends_to_fusion_tokens_before_each_layer_updates_them(net):
    gen = torch.Generator().manual_seed(6)
    token, fusion = torch.randn(1, 1, 96, generator=gen, dtype=torch.float64), torch.randn(1, 96, 2, 3, generator=gen, dtype=torch.float64)
    tokens = linear(fusion.flatten(2).transpose(1, 2), net.patch_embed4_block4) + sincos_pos_embed(2, 3, 96).double()
    want = token
    for blk in net.blocks4:
        want, tokens = blk.token_attend(want, tokens), blk.self_attend(tokens)  # both from layer l's input
    with torch.no_grad():
        torch.testing.assert_close(net.update_token(token, fusion), final_norm(net, want), **TOL)


def test_fresh_tokens_start_from_cls_token_drawn_with_std_002():
    torch.manual_seed(0)
    net = build_jointformer("base")
    assert float(net.cls_token.detach().std()) == pytest.approx(0.02, rel=0.1)
    tokens = net.new_token(3)
    assert tokens.shape == (3, 1, 768) and torch.equal(tokens[2], net.cls_token[0])


@pytest.mark.parametrize("wrapper", [None, "model", "state_dict", "network"])
def test_official_layout_loads_from_each_wrapper_without_the_fixed_position_tables(wrapper):
    from mnemovision.vision.checkpoints import load_state_dict_strict
    from mnemovision.vos.models import convert_official_jointformer

    net = randomized(build_jointformer("tiny"), seed=7).float()
    official = {("" if k.startswith("decoder.") else "convmae.") + k: v for k, v in net.state_dict().items()}
    for table in ("pos_embed", "pos_embed_block4", "pos_embed_block5"):  # fixed sin-cos tables, computed here per grid
        official[f"convmae.{table}"] = torch.zeros(1, 576, 96)
    fresh = build_jointformer("tiny")
    load_state_dict_strict(fresh, convert_official_jointformer(official if wrapper is None else {wrapper: official}))
    for key, value in net.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
