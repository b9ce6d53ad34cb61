"""The U-Net baseline (Ronneberger et al. 2015), configurable in depth and width."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seglab.config import ModelConfig
from seglab.models.blocks import ConvBlock
from seglab.models.registry import register_model


class UNet(nn.Module):
    """A U-Net for any number of input channels and classes and any input size.

    Inputs whose sides are not multiples of ``2**depth`` are padded (reflect)
    internally and the output is cropped back to the input size.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 1,
        depth: int = 4,
        base_channels: int = 16,
        norm: str = "batch",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.multiple = 2**depth
        self.stem = ConvBlock(in_channels, widths[0], norm)
        self.down = nn.ModuleList(
            ConvBlock(widths[i], widths[i + 1], norm, dropout if i == depth - 1 else 0.0)
            for i in range(depth)
        )
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
            for i in reversed(range(depth))
        )
        self.decode = nn.ModuleList(
            ConvBlock(2 * widths[i], widths[i], norm, dropout) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, self.multiple)
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))
        y = skips.pop()
        for up, block in zip(self.up, self.decode, strict=True):
            y = block(torch.cat([skips.pop(), up(y)], dim=1))
        return self.head(y)[..., :height, :width]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the bottom and right of ``x`` so both sides are multiples of ``multiple``."""
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not (pad_h or pad_w):
        return x
    # reflect needs the pad to be smaller than the side; fall back to replicate
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


@register_model("unet")
def build_unet(cfg: ModelConfig) -> UNet:
    return UNet(
        in_channels=cfg.in_channels,
        num_classes=cfg.num_classes,
        depth=cfg.depth,
        base_channels=cfg.base_channels,
        norm=cfg.norm,
        dropout=cfg.dropout,
    )
