"""SwinIR (Liang et al. 2021), the lightweight SR configuration: shallow conv, residual Swin
Transformer blocks (RSTB) of window attention with relative position bias and shifted windows, a
conv after the body with a global skip, and a one-step pixel-shuffle upsampler ("pixelshuffledirect").

``build_swinir("light", scale)``: embed 60, depths [6, 6, 6, 6], heads [6, 6, 6, 6], window 8,
MLP ratio 2 (about 0.9M parameters); ``"tiny"``: embed 12, depths [2], heads [2], window 4 (tests).
Inputs are RGB in [0, 1], reflect-padded to a multiple of the window and cropped back.

Parameter names are the official ones (``conv_first``, ``patch_embed.norm``,
``layers.{i}.residual_group.blocks.{j}.{norm1, attn.qkv, attn.proj, attn.relative_position_bias_table,
norm2, mlp.fc1, mlp.fc2}``, ``layers.{i}.conv``, ``norm``, ``conv_after_body``, ``upsample.0``), so
``convert_official_swinir`` only unwraps ``params`` and drops the buffers the official code saves
(``relative_position_index``, ``attn_mask``), which are recomputed here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mnemovision.sr.models.edsr import DIV2K_MEAN
from mnemovision.vision.layers import Mlp, vit_init

SIZES = {"tiny": dict(embed=12, depths=(2,), heads=(2,), window=4), "light": dict(embed=60, depths=(6, 6, 6, 6), heads=(6, 6, 6, 6), window=8)}


def relative_position_index(window: int) -> torch.Tensor:
    """[w*w, w*w] index into the (2w-1)^2 bias table for every (query, key) pair of a window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)  # [2, N]
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)  # [N, N, 2]
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """[B, H, W, C] -> [B * nW, w*w, C] (windows in row-major order)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def window_merge(windows: torch.Tensor, window: int, b: int, h: int, w: int) -> torch.Tensor:
    """Inverse of ``window_partition``: [B * nW, w*w, C] -> [B, H, W, C]."""
    c = windows.shape[-1]
    x = windows.view(b, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


def shift_mask(h: int, w: int, window: int, shift: int, device=None) -> torch.Tensor:
    """[nW, N, N] additive mask (0 or -100) keeping shifted-window attention within each region."""
    labels = torch.zeros(1, h, w, 1, device=device)
    count = 0
    for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            labels[:, hs, ws, :] = count
            count += 1
    win = window_partition(labels, window).squeeze(-1)  # [nW, N]
    diff = win[:, None, :] - win[:, :, None]
    return torch.where(diff != 0, torch.tensor(-100.0, device=device), torch.tensor(0.0, device=device))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias."""

    def __init__(self, dim: int, window: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x: [B * nW, N, C]; mask: [nW, N, N] or None."""
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1)  # [h, N, N]
        if mask is None:
            attn_bias = bias[None].expand(bw, -1, -1, -1)
        else:
            nw = mask.shape[0]
            attn_bias = (bias[None, None] + mask[None, :, None]).expand(bw // nw, -1, -1, -1, -1).reshape(bw, self.heads, n, n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias.to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class SwinBlock(nn.Module):
    """Pre-norm window attention (cyclically shifted by ``shift``) and MLP, each with a residual."""

    def __init__(self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float) -> None:
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, size: tuple[int, int], mask: torch.Tensor | None) -> torch.Tensor:
        """x: [B, H*W, C] with H, W multiples of the window."""
        h, w = size
        b, _, c = x.shape
        y = self.norm1(x).view(b, h, w, c)
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), dims=(1, 2))
        y = window_merge(self.attn(window_partition(y, self.window), mask if self.shift else None), self.window, b, h, w)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), dims=(1, 2))
        x = x + y.reshape(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class ResidualGroup(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, window: int, mlp_ratio: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([SwinBlock(dim, heads, window, 0 if i % 2 == 0 else window // 2, mlp_ratio) for i in range(depth)])


class RSTB(nn.Module):
    """Residual Swin Transformer block: Swin blocks, then a 3x3 conv on the image grid, plus the input."""

    def __init__(self, dim: int, depth: int, heads: int, window: int, mlp_ratio: float) -> None:
        super().__init__()
        self.residual_group = ResidualGroup(dim, depth, heads, window, mlp_ratio)
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int], mask: torch.Tensor | None) -> torch.Tensor:
        y = x
        for block in self.residual_group.blocks:
            y = block(y, size, mask)
        b, _, c = x.shape
        grid = y.transpose(1, 2).reshape(b, c, *size)
        return self.conv(grid).flatten(2).transpose(1, 2) + x


class PatchNorm(nn.Module):
    """SwinIR's ``patch_embed`` with patch size 1: flatten the grid and LayerNorm the tokens."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.flatten(2).transpose(1, 2))


class SwinIR(nn.Module):
    """SwinIR with the pixelshuffledirect upsampler: [B, 3, h, w] in [0, 1] -> [B, 3, s*h, s*w]."""

    def __init__(self, scale: int = 2, embed: int = 60, depths=(6, 6, 6, 6), heads=(6, 6, 6, 6), window: int = 8, mlp_ratio: float = 2.0, img_range: float = 1.0, mean=DIV2K_MEAN) -> None:
        super().__init__()
        if len(depths) != len(heads):
            raise ValueError(f"depths and heads must have the same length, got {depths} and {heads}")
        self.scale, self.window, self.img_range = scale, window, img_range
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.conv_first = nn.Conv2d(3, embed, 3, padding=1)
        self.patch_embed = PatchNorm(embed)
        self.layers = nn.ModuleList([RSTB(embed, d, h, window, mlp_ratio) for d, h in zip(depths, heads)])
        self.norm = nn.LayerNorm(embed)
        self.conv_after_body = nn.Conv2d(embed, embed, 3, padding=1)
        self.upsample = nn.Sequential(nn.Conv2d(embed, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
        self.apply(vit_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % self.window, (-w) % self.window
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        hp, wp = x.shape[-2:]
        x = (x - self.mean) * self.img_range
        x = self.conv_first(x)
        mask = shift_mask(hp, wp, self.window, self.window // 2, x.device)
        tokens = self.patch_embed(x)
        for layer in self.layers:
            tokens = layer(tokens, (hp, wp), mask)
        body = self.norm(tokens).transpose(1, 2).reshape(x.shape)
        x = self.conv_after_body(body) + x
        x = self.upsample(x) / self.img_range + self.mean
        return x[..., : h * self.scale, : w * self.scale]


def build_swinir(size: str = "light", scale: int = 2) -> SwinIR:
    """``size`` in tiny | light; ``scale`` in 2 | 3 | 4 (pixelshuffledirect upsampler)."""
    if size not in SIZES:
        raise ValueError(f"SwinIR size must be one of {sorted(SIZES)}, got {size!r}")
    return SwinIR(scale, **SIZES[size])


def convert_official_swinir(checkpoint: dict) -> dict[str, torch.Tensor]:
    """An official SwinIR checkpoint (``{"params": ...}``, ``{"params_ema": ...}`` or a bare state
    dict) -> this module's state dict: the saved ``relative_position_index`` and ``attn_mask``
    buffers are dropped (recomputed here); every other key is kept as is for strict loading."""
    state = checkpoint.get("params_ema", checkpoint.get("params", checkpoint))
    return {k: v for k, v in state.items() if not k.endswith(("attn.relative_position_index", ".attn_mask"))}
