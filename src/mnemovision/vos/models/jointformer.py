"""JointFormer (Zhang et al., arXiv 2308.13505): a ConvMAE-style backbone whose ViT blocks jointly
extract features and propagate targets from memory frames, a compressed memory token per object,
and an XMem-style decoder.

Shapes (``d`` = dims, image H x W, tokens at 1/16: h x w):
- memory encoding: RGB + own mask + others' mask [B, 5, H, W] -> conv stages (f4 [B, d0, H/4, W/4],
  f8 [B, d1, H/8, W/8]) -> tokens [B, hw, d2] through ``blocks3`` with per-frame self-attention; the
  input of every joint layer is cached (the per-layer memory); the object's compressed token C rides
  along, attending to [C ; that frame's tokens] in each layer (update 2);
- query reading: RGB [B, 3, H, W] -> tokens Q; in joint layer l, Q attends jointly to its own
  tokens (dense) and to the cached layer-l tokens of all memory frames (dense in training, top-k at
  inference) through ``kernels.memory_attention(extra_q_kv=...)``; f16 = LN(Q);
- enhancement (``blocks5``): each f16 token reads C through a sigmoid gate (one key, so no softmax);
- decoder: f16 + enhanced f16 -> 1/16 -> 1/8 (f8 skip) -> 1/4 (f4 skip) -> logits [B, 1, H/4, W/4]
  and a fusion feature [B, d2, h, w];
- update 1 (``blocks4``): C attends to [C ; fusion tokens] after every segmented frame.

Module names follow the official code (``patch_embed1_query``, ``patch_embed1_memory``, ``blocks1``..
``blocks5``, ``patch_embed4_block4/5``, ``norm``, ``cls_token``, ConvMAE's ``CBlock``/``Block``
internals), so ``convert_official_jointformer`` maps the official base checkpoint by prefix.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from mnemovision.kernels import memory_attention
from mnemovision.vision.layers import Mlp, vit_init

SIZES = {
    "tiny": dict(dims=(32, 48, 96), depths=(1, 1, 3), heads=3, decoder=(48, 32, 32)),
    "small": dict(dims=(64, 96, 192), depths=(1, 1, 6), heads=6, decoder=(96, 64, 64)),
    "base": dict(dims=(256, 384, 768), depths=(2, 2, 11), heads=12, decoder=(384, 256, 256)),
}


def sincos_pos_embed(h: int, w: int, dim: int, device=None) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding [1, h*w, dim] (half the channels per axis)."""
    if dim % 4:
        raise ValueError(f"position embedding needs dim divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32, device=device) / quarter)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=device), torch.arange(w, dtype=torch.float32, device=device), indexing="ij")
    out = [torch.sin(xs.flatten()[:, None] * omega), torch.cos(xs.flatten()[:, None] * omega), torch.sin(ys.flatten()[:, None] * omega), torch.cos(ys.flatten()[:, None] * omega)]
    return torch.cat(out, dim=1)[None]


class PatchEmbed(nn.Module):
    """Strided conv + LayerNorm over channels + GELU (ConvMAE's patch embedding)."""

    def __init__(self, in_ch: int, out_ch: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_ch, out_ch, patch, stride=patch)
        self.norm = nn.LayerNorm(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return F.gelu(self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


class CMlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(dim, hidden, 1), nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class CBlock(nn.Module):
    """ConvMAE's convolutional block: 1x1, 5x5 depthwise ("attention"), 1x1, then a conv MLP."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.conv1, self.conv2 = nn.Conv2d(dim, dim, 1), nn.Conv2d(dim, dim, 1)
        self.attn = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.mlp = CMlp(dim, int(dim * mlp_ratio))

    @staticmethod
    def _ln(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
        return norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.conv2(self.attn(self.conv1(self._ln(self.norm1, x))))
        return x + self.mlp(self._ln(self.norm2, x))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[B, N, C] (already normalised) -> q, k, v each [B, heads, N, C / heads]."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return q, k, v

    def merge(self, out: torch.Tensor) -> torch.Tensor:
        b, h, n, d = out.shape
        return self.proj(out.transpose(1, 2).reshape(b, n, h * d))


class Block(nn.Module):
    """Pre-LN transformer block whose attention pattern is chosen by the caller (see the methods)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def _finish(self, x: torch.Tensor, attn_out: torch.Tensor) -> torch.Tensor:
        x = x + self.attn.merge(attn_out)
        return x + self.mlp(self.norm2(x))

    def self_attend(self, x: torch.Tensor) -> torch.Tensor:
        """Plain self-attention over ``x`` [B, N, C]."""
        q, k, v = self.attn.split(self.norm1(x))
        return self._finish(x, F.scaled_dot_product_attention(q, k, v))

    def token_attend(self, token: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The compressed token [B, 1, C] attends to [token ; context [B, N, C]] (softmax over both)."""
        q, k, v = self.attn.split(self.norm1(torch.cat([token, context], dim=1)))
        return self._finish(token, F.scaled_dot_product_attention(q[:, :, :1], k, v))

    def joint_read(self, x: torch.Tensor, memory: torch.Tensor | None, top_k: int | None) -> torch.Tensor:
        """Query tokens [B, N, C] attend to themselves (dense) and to memory tokens [B, M, C] (the
        cached layer inputs of the memory frames; top-k when given) in one softmax."""
        q, k, v = self.attn.split(self.norm1(x))
        if memory is None or memory.shape[1] == 0:
            return self._finish(x, F.scaled_dot_product_attention(q, k, v))
        _, km, vm = self.attn.split(self.norm1(memory))
        return self._finish(x, memory_attention(q, km, vm, top_k=top_k, extra_q_kv=(k, v)))

    def gated_read(self, x: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        """Enhancement: each token of ``x`` [B, N, C] reads the compressed token [B, 1, C] through a
        per-head sigmoid gate on q.k (a single key, so a softmax would always be 1)."""
        q, _, _ = self.attn.split(self.norm1(x))
        _, kt, vt = self.attn.split(self.norm1(token))
        gate = torch.sigmoid((q @ kt.transpose(-2, -1)) * q.shape[-1] ** -0.5)  # [B, h, N, 1]
        return self._finish(x, gate * vt)


class ResBlock(nn.Module):
    """Two 3x3 convs with ReLU before each and a (1x1 when the width changes) skip (XMem's GroupResBlock)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.downsample = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(F.relu(x))))
        return y + (x if self.downsample is None else self.downsample(x))


class CBAM(nn.Module):
    """Channel attention (avg/max pooled MLP) then spatial attention (7x7 conv over avg/max maps)."""

    def __init__(self, ch: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(ch // reduction, 4)
        self.mlp = nn.Sequential(nn.Linear(ch, hidden), nn.ReLU(), nn.Linear(hidden, ch))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel = torch.sigmoid(self.mlp(x.mean((2, 3))) + self.mlp(x.amax((2, 3))))[..., None, None]
        x = x * channel
        return x * torch.sigmoid(self.spatial(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))


class UpBlock(nn.Module):
    """skip conv 3x3 + bilinear x2 of the coarser map, then a ResBlock."""

    def __init__(self, skip_ch: int, up_ch: int, out_ch: int) -> None:
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_ch, up_ch, 3, padding=1)
        self.out_conv = ResBlock(up_ch, out_ch)

    def forward(self, skip: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        return self.out_conv(self.skip_conv(skip) + F.interpolate(coarse, size=skip.shape[-2:], mode="bilinear", align_corners=False))


class Decoder(nn.Module):
    """f16 + enhanced f16 -> logits at 1/4 and the fusion feature at 1/16 (``3 * (d2 // 3)`` channels)."""

    def __init__(self, dims: tuple[int, int, int], widths: tuple[int, int, int]) -> None:
        super().__init__()
        c16, c8, c4 = widths
        self.fuser_16 = nn.ModuleDict({"block1": ResBlock(2 * dims[2], c16), "attention": CBAM(c16), "block2": ResBlock(c16, c16)})
        self.up_16_8 = UpBlock(dims[1], c16, c8)
        self.up_8_4 = UpBlock(dims[0], c8, c4)
        self.pred = nn.Conv2d(c4, 1, 3, padding=1)
        part = dims[2] // 3
        self.fuser_all = nn.ModuleDict({"g16": nn.Conv2d(c16, part, 1), "g8": nn.Conv2d(c8, part, 1), "g4": nn.Conv2d(c4 + 1, dims[2] - 2 * part, 1)})

    def forward(self, f16: torch.Tensor, enhanced: torch.Tensor, f8: torch.Tensor, f4: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.fuser_16["block1"](torch.cat([f16, enhanced], 1))
        g16 = self.fuser_16["block2"](g + self.fuser_16["attention"](g))
        g8 = self.up_16_8(f8, g16)
        g4 = self.up_8_4(f4, g8)
        logits = self.pred(F.relu(g4))
        size = f16.shape[-2:]
        fusion = torch.cat([
            self.fuser_all["g16"](g16),
            self.fuser_all["g8"](F.adaptive_avg_pool2d(g8, size)),
            self.fuser_all["g4"](F.adaptive_avg_pool2d(torch.cat([g4, logits], 1), size)),
        ], 1)
        return logits, fusion


class JointFormer(nn.Module):
    """See the module docstring. Inputs are ImageNet-normalised RGB with sides divisible by 16."""

    def __init__(self, dims=(32, 48, 96), depths=(1, 1, 3), heads: int = 3, decoder=(48, 32, 32), mlp_ratio: float = 4.0) -> None:
        super().__init__()
        d0, d1, d2 = dims
        self.dims = dims
        self.patch_embed1_query = PatchEmbed(3, d0, 4)
        self.patch_embed1_memory = PatchEmbed(5, d0, 4)
        self.blocks1 = nn.ModuleList([CBlock(d0, mlp_ratio) for _ in range(depths[0])])
        self.patch_embed2 = PatchEmbed(d0, d1, 2)
        self.blocks2 = nn.ModuleList([CBlock(d1, mlp_ratio) for _ in range(depths[1])])
        self.patch_embed3 = PatchEmbed(d1, d2, 2)
        self.patch_embed4 = nn.Linear(d2, d2)
        self.blocks3 = nn.ModuleList([Block(d2, heads, mlp_ratio) for _ in range(depths[2])])
        self.patch_embed4_block4 = nn.Linear(d2, d2)
        self.blocks4 = nn.ModuleList([Block(d2, heads, mlp_ratio) for _ in range(2)])
        self.patch_embed4_block5 = nn.Linear(d2, d2)
        self.blocks5 = nn.ModuleList([Block(d2, heads, mlp_ratio)])
        self.norm = nn.LayerNorm(d2, eps=1e-6)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d2))
        self.decoder = Decoder(dims, decoder)
        nn.init.normal_(self.cls_token, std=0.02)
        self.apply(vit_init)

    # ------------------------------------------------------------------ stages
    def _conv_stages(self, x: torch.Tensor, embed: PatchEmbed) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> f4, f8 and the 1/16 tokens [B, hw, d2] with position embedding."""
        f4 = embed(x)
        for blk in self.blocks1:
            f4 = blk(f4)
        f8 = self.patch_embed2(f4)
        for blk in self.blocks2:
            f8 = blk(f8)
        g = self.patch_embed3(f8)
        h, w = g.shape[-2:]
        tokens = self.patch_embed4(g.flatten(2).transpose(1, 2)) + sincos_pos_embed(h, w, g.shape[1], g.device)
        return f4, f8, tokens

    def new_token(self, batch: int) -> torch.Tensor:
        """Fresh compressed memory tokens [batch, 1, d2] (one per object)."""
        return self.cls_token.expand(batch, -1, -1)

    def encode_memory(self, image: torch.Tensor, masks: torch.Tensor, token: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Memorise a frame: image [B, 3, H, W], masks [B, 2, H, W] (own, others), token [B, 1, d2]
        -> (per-layer memory tokens, each [B, hw, d2]; the token after update 2)."""
        _, _, x = self._conv_stages(torch.cat([image, masks], 1), self.patch_embed1_memory)
        cache = []
        for blk in self.blocks3:
            cache.append(x)
            token = blk.token_attend(token, x)
            x = blk.self_attend(x)
        return cache, self.norm(token)

    def read(self, image: torch.Tensor, memory: list[torch.Tensor] | None, top_k: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, int]]:
        """Query frame [B, 3, H, W] with per-layer memory tokens (each [B, T*hw, d2]) -> f4, f8,
        f16 tokens [B, hw, d2] and the 1/16 grid size."""
        f4, f8, x = self._conv_stages(image, self.patch_embed1_query)
        for i, blk in enumerate(self.blocks3):
            x = blk.joint_read(x, None if memory is None else memory[i], top_k)
        return f4, f8, self.norm(x), (image.shape[-2] // 16, image.shape[-1] // 16)

    def segment(self, f4, f8, f16, grid, token) -> tuple[torch.Tensor, torch.Tensor]:
        """Enhance f16 with the token, decode -> (logits [B, 1, H, W] at full size, fusion [B, d2, h, w])."""
        h, w = grid
        pos = sincos_pos_embed(h, w, f16.shape[-1], f16.device)
        enhanced = self.patch_embed4_block5(f16) + pos
        for blk in self.blocks5:
            enhanced = blk.gated_read(enhanced, token)
        enhanced = self.norm(enhanced)
        to_map = lambda t: t.transpose(1, 2).reshape(t.shape[0], -1, h, w)  # noqa: E731
        logits, fusion = self.decoder(to_map(f16), to_map(enhanced), f8, f4)
        return F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=False), fusion

    def update_token(self, token: torch.Tensor, fusion: torch.Tensor) -> torch.Tensor:
        """Update 1: the token attends to [token ; fusion tokens] in ``blocks4``."""
        b, c, h, w = fusion.shape
        tokens = self.patch_embed4_block4(fusion.flatten(2).transpose(1, 2)) + sincos_pos_embed(h, w, c, fusion.device)
        for blk in self.blocks4:
            token_next = blk.token_attend(token, tokens)
            tokens = blk.self_attend(tokens)
            token = token_next
        return self.norm(token)


def build_jointformer(size: str = "tiny") -> JointFormer:
    """``size`` in tiny | small | base (base: ConvMAE-Base dims 256/384/768, depths 2/2/11, 12 heads)."""
    if size not in SIZES:
        raise ValueError(f"JointFormer size must be one of {sorted(SIZES)}, got {size!r}")
    return JointFormer(**SIZES[size])


def convert_official_jointformer(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official checkpoint (backbone under ``convmae.``, decoder under ``decoder.``; optionally
    wrapped in ``{"model": ...}``/``{"state_dict": ...}`` or prefixed ``module.``) -> this module's
    keys. The official fixed position-embedding buffer (``convmae.pos_embed``) is dropped: here the
    sin-cos embedding is computed for every grid size.

    Raises:
        KeyError: a key outside the backbone and decoder prefixes (its name is given).
    """
    for wrapper in ("model", "state_dict", "network"):
        if isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key in ("convmae.pos_embed", "convmae.pos_embed_block4", "convmae.pos_embed_block5"):
            continue
        if key.startswith("convmae."):
            out[key.removeprefix("convmae.")] = value
        elif key.startswith("decoder."):
            out[key] = value
        else:
            raise KeyError(f"{key}: not a key of the official JointFormer layout (convmae.* or decoder.*)")
    return out
