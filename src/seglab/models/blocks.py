"""Building blocks shared by the model families."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def norm_layer(kind: str, channels: int) -> nn.Module:
    """A normalisation layer by name: batch, instance, group or none."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by normalisation and ReLU."""

    def __init__(self, in_ch: int, out_ch: int, norm: str = "batch", dropout: float = 0.0):
        bias = norm == "none"
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=bias),
            norm_layer(norm, out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=bias),
            norm_layer(norm, out_ch),
            nn.ReLU(inplace=True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        super().__init__(*layers)


class ResidualConvBlock(nn.Module):
    """Two 3x3 convolutions with normalisation and ReLU; the second adds its input back.

    The first convolution changes the channel count, so the shortcut around the second
    needs no projection: the block costs what :class:`ConvBlock` costs, plus one addition
    (a pre-activation-free variant of He et al. 2016's basic block). Same interface as
    :class:`ConvBlock`.
    """

    def __init__(self, in_ch: int, out_ch: int, norm: str = "batch", dropout: float = 0.0):
        super().__init__()
        bias = norm == "none"
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=bias),
            norm_layer(norm, out_ch),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Sequential(
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=bias), norm_layer(norm, out_ch)
        )
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        return self.dropout(F.relu(self.conv2(y) + y))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): channel weights from global average pooling."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.fc = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x)


class CBAM(nn.Module):
    """Convolutional block attention (Woo et al. 2018): channel, then spatial attention."""

    def __init__(self, channels: int, reduction: int = 8, kernel_size: int = 7) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1)
        )
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        peak = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        x = x * torch.sigmoid(avg + peak)
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (Chen et al. 2017): parallel dilated convs + image pooling."""

    def __init__(
        self, in_ch: int, out_ch: int, rates: tuple[int, ...] | list[int], norm: str = "batch"
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(
                    in_ch,
                    out_ch,
                    1 if r == 1 else 3,
                    padding=0 if r == 1 else r,
                    dilation=r,
                    bias=False,
                ),
                norm_layer(norm, out_ch),
                nn.ReLU(inplace=True),
            )
            for r in rates
        )
        # image-level branch: no norm, so batches of one and 1x1 maps stay well defined
        self.image_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_ch, out_ch, 1), nn.ReLU(inplace=True)
        )
        self.project = nn.Sequential(
            nn.Conv2d(out_ch * (len(rates) + 1), out_ch, 1, bias=False),
            norm_layer(norm, out_ch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.image_pool(x).expand(-1, -1, *x.shape[-2:])
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], dim=1))


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018): the decoder signal weights a skip connection."""

    def __init__(self, skip_ch: int, gate_ch: int, hidden: int) -> None:
        super().__init__()
        self.skip = nn.Conv2d(skip_ch, hidden, 1, bias=False)
        self.gate = nn.Conv2d(gate_ch, hidden, 1)
        self.psi = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(hidden, 1, 1), nn.Sigmoid())

    def forward(self, skip: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return skip * self.psi(self.skip(skip) + self.gate(gate))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the bottom and right of ``x`` so both sides are multiples of ``multiple``."""
    return pad_to_size(
        x, -(-x.shape[-2] // multiple) * multiple, -(-x.shape[-1] // multiple) * multiple
    )


def pad_to_size(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad the bottom and right of ``x`` to ``height`` x ``width`` (reflect where possible)."""
    pad_h, pad_w = height - x.shape[-2], width - x.shape[-1]
    if not (pad_h or pad_w):
        return x
    # reflect needs the pad to be smaller than the side; fall back to replicate
    mode = "reflect" if pad_h < x.shape[-2] and pad_w < x.shape[-1] else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def upsample_to(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize of ``x`` to ``size`` (no-op when it already has that size)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
