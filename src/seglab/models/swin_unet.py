"""Swin-UNet (Cao et al. 2022): a Swin transformer encoder and a symmetric Swin decoder.

Patch embedding (4x4), stages of (shifted-)window attention blocks with patch
merging between them, the deepest stage as bottleneck, then decoder stages with
patch expanding (x2), skip connections fused by a linear layer, and a final x4
patch expanding before the 1x1 head. Any input size: the image is padded to a
multiple of ``4 * 2**(stages-1)`` and cropped back; inside each block the token
map is padded to whole windows and the padded tokens are masked out of attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from seglab.config import ModelConfig
from seglab.models.blocks import pad_to_multiple
from seglab.models.registry import register_model

PATCH = 4
MASKED = -100.0  # additive attention bias between tokens that must not see each other


def heads_for(dim: int, head_dim: int = 32) -> int:
    """Attention heads for ``dim`` channels: about ``dim / head_dim``, dividing ``dim``."""
    heads = max(1, dim // head_dim)
    while dim % heads:
        heads -= 1
    return heads


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a relative position bias."""

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        coords = torch.stack(
            torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        ).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + window - 1
        self.register_buffer(
            "rel_index", rel[..., 0] * (2 * window - 1) + rel[..., 1], persistent=False
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, batch: int) -> torch.Tensor:
        """``x``: (batch * windows, tokens, dim); ``mask``: (windows, tokens, tokens) or None."""
        bw, n, c = x.shape
        q, k, v = self.qkv(x).reshape(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        bias = self.bias_table[self.rel_index.reshape(-1)].reshape(n, n, -1).permute(2, 0, 1)
        if mask is None:
            attn_bias = bias[None]
        else:
            windows = mask.shape[0]
            attn_bias = (bias[None, None] + mask[None, :, None]).expand(batch, -1, -1, -1, -1)
            attn_bias = attn_bias.reshape(batch * windows, self.heads, n, n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias.to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    b, h, w, c = x.shape
    x = x.reshape(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_merge(x: torch.Tensor, ws: int, b: int, h: int, w: int) -> torch.Tensor:
    x = x.reshape(b, h // ws, w // ws, ws, ws, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, -1)


def attention_mask(
    h: int, w: int, hp: int, wp: int, ws: int, shift: int, device: torch.device
) -> torch.Tensor | None:
    """(windows, tokens, tokens) additive mask: shifted regions and padding stay apart."""
    if not shift and hp == h and wp == w:
        return None
    rows, cols = torch.arange(hp, device=device), torch.arange(wp, device=device)
    # padding, in the block's original coordinates, then rolled like the features
    pad = (rows[:, None] >= h) | (cols[None, :] >= w)
    label = pad.long()
    if shift:
        label = torch.roll(label, (-shift, -shift), (0, 1))
        # regions of the cyclically shifted map (rows and columns each in three bands)
        band_r = (rows >= hp - ws).long() + (rows >= hp - shift).long()
        band_c = (cols >= wp - ws).long() + (cols >= wp - shift).long()
        label = label + 2 * (3 * band_r[:, None] + band_c[None, :])
    windows = window_partition(label[None, :, :, None].float(), ws)[..., 0]  # (nW, N)
    differs = windows[:, :, None] != windows[:, None, :]
    return differs.float() * MASKED


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        ws = self.window
        shift = self.shift if max(h, w) > ws else 0
        hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
        y = F.pad(self.norm1(x), (0, 0, 0, wp - w, 0, hp - h))
        if shift:
            y = torch.roll(y, (-shift, -shift), (1, 2))
        mask = attention_mask(h, w, hp, wp, ws, shift, x.device)
        y = window_merge(self.attn(window_partition(y, ws), mask, b), ws, b, hp, wp)
        if shift:
            y = torch.roll(y, (shift, shift), (1, 2))
        x = x + y[:, :h, :w]
        return x + self.mlp(self.norm2(x))


class SwinStage(nn.Module):
    """``depth`` blocks alternating regular and shifted windows; optional checkpointing."""

    def __init__(self, dim: int, depth: int, window: int, grad_checkpointing: bool = False):
        super().__init__()
        heads = heads_for(dim)
        self.blocks = nn.ModuleList(
            SwinBlock(dim, heads, window, 0 if i % 2 == 0 else window // 2) for i in range(depth)
        )
        self.grad_checkpointing = grad_checkpointing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


class PatchMerging(nn.Module):
    """2x2 neighbouring tokens -> one token with twice the channels."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduce = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduce(self.norm(x))


class PatchExpanding(nn.Module):
    """One token -> ``scale x scale`` tokens of ``out_dim`` channels (a linear layer, reshaped)."""

    def __init__(self, dim: int, out_dim: int, scale: int) -> None:
        super().__init__()
        self.scale, self.out_dim = scale, out_dim
        self.expand = nn.Linear(dim, scale * scale * out_dim, bias=False)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        s = self.scale
        x = self.expand(x).reshape(b, h, w, s, s, self.out_dim).permute(0, 1, 3, 2, 4, 5)
        return self.norm(x.reshape(b, h * s, w * s, self.out_dim))


class SwinUNet(nn.Module):
    """Swin-UNet; ``aux_outputs`` holds decoder-stage logits in training with deep supervision."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 1,
        embed_dim: int = 96,
        depths: list[int] | tuple[int, ...] = (2, 2, 2, 2),
        window_size: int = 8,
        grad_checkpointing: bool = False,
        deep_supervision: bool = False,
    ) -> None:
        super().__init__()
        n = len(depths)
        dims = [embed_dim * 2**i for i in range(n)]
        self.multiple = PATCH * 2 ** (n - 1)
        self.patch_embed = nn.Conv2d(in_channels, embed_dim, PATCH, stride=PATCH)
        self.embed_norm = nn.LayerNorm(embed_dim)
        self.encoder = nn.ModuleList(
            SwinStage(dims[i], depths[i], window_size, grad_checkpointing) for i in range(n)
        )
        self.merge = nn.ModuleList(PatchMerging(dims[i]) for i in range(n - 1))
        self.expand = nn.ModuleList(
            PatchExpanding(dims[i + 1], dims[i], 2) for i in reversed(range(n - 1))
        )
        self.fuse = nn.ModuleList(nn.Linear(2 * dims[i], dims[i]) for i in reversed(range(n - 1)))
        self.decoder = nn.ModuleList(
            SwinStage(dims[i], depths[i], window_size, grad_checkpointing)
            for i in reversed(range(n - 1))
        )
        self.final_expand = PatchExpanding(embed_dim, embed_dim, PATCH)
        self.head = nn.Conv2d(embed_dim, num_classes, 1)
        self.aux_heads = (
            nn.ModuleList(nn.Linear(dims[i], num_classes) for i in reversed(range(1, n - 1)))
            if deep_supervision
            else None
        )
        self.aux_outputs: list[torch.Tensor] = []
        self.aux_extent: tuple[int, int] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, self.multiple)
        y = self.embed_norm(self.patch_embed(x).permute(0, 2, 3, 1))
        skips = []
        for i, stage in enumerate(self.encoder):
            y = stage(y)
            if i < len(self.merge):
                skips.append(y)
                y = self.merge[i](y)
        decoded = []
        for expand, fuse, stage in zip(self.expand, self.fuse, self.decoder, strict=True):
            y = stage(fuse(torch.cat([skips.pop(), expand(y)], dim=-1)))
            decoded.append(y)
        logits = self.head(self.final_expand(y).permute(0, 3, 1, 2))
        if self.aux_heads is not None and self.training:
            self.aux_outputs = [
                head(d).permute(0, 3, 1, 2)
                for head, d in zip(self.aux_heads, decoded, strict=False)
            ]
            self.aux_extent = tuple(x.shape[-2:])
        else:
            self.aux_outputs = []
        return logits[..., :height, :width]


@register_model("swin_unet", ("embed_dim", "depths", "window_size", "deep_supervision"))
def build_swin_unet(cfg: ModelConfig) -> SwinUNet:
    return SwinUNet(
        in_channels=cfg.in_channels,
        num_classes=cfg.num_classes,
        embed_dim=cfg.embed_dim,
        depths=cfg.depths,
        window_size=cfg.window_size,
        grad_checkpointing=cfg.grad_checkpointing,
        deep_supervision=cfg.deep_supervision,
    )
