"""DeepLabv3+ (Chen et al. 2018) on a timm encoder, as a baseline.

ASPP on the deepest features, upsampled and fused with a 48-channel projection
of the stride-4 features, two 3x3 convolutions, bilinear upsampling to the input.
Encoders that accept ``output_stride`` (ResNets, ...) run at stride 16 as in the paper.
"""

from __future__ import annotations

import torch
from torch import nn

from seglab.config import ModelConfig
from seglab.errors import SeglabError
from seglab.models.blocks import (
    ASPP,
    ConvBlock,
    norm_layer,
    upsample_to,
)
from seglab.models.encoders import TimmEncoder
from seglab.models.registry import register_model


class DeepLabV3Plus(nn.Module):
    def __init__(
        self,
        encoder: TimmEncoder,
        num_classes: int,
        width: int,
        rates: list[int],
        norm: str = "batch",
    ) -> None:
        super().__init__()
        self.encoder = encoder
        # the low-level feature: the first one at stride 4 or more (stride 2 is too early)
        self.low_index = next(i for i, r in enumerate(encoder.reductions) if r >= 4)
        self.aspp = ASPP(encoder.channels[-1], width, rates, norm)
        low = encoder.channels[self.low_index]
        self.low_proj = nn.Sequential(
            nn.Conv2d(low, 48, 1, bias=False), norm_layer(norm, 48), nn.ReLU(inplace=True)
        )
        self.fuse = ConvBlock(width + 48, width, norm)
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = self.encoder.pad_input(x)
        features = self.encoder(x)
        low = self.low_proj(features[self.low_index])
        deep = upsample_to(self.aspp(features[-1]), low.shape[-2:])
        logits = self.head(self.fuse(torch.cat([deep, low], dim=1)))
        return upsample_to(logits, x.shape[-2:])[..., :height, :width]


@register_model(
    "deeplabv3plus", ("encoder", "pretrained", "img_size", "base_channels", "aspp_rates", "norm")
)
def build_deeplabv3plus(cfg: ModelConfig) -> DeepLabV3Plus:
    """DeepLabv3+ on ``model.encoder`` (default resnet50); decoder width 16 x base_channels."""
    name = cfg.encoder or "resnet50"
    common = dict(
        pretrained=cfg.pretrained, img_size=cfg.img_size, grad_checkpointing=cfg.grad_checkpointing
    )
    try:
        encoder = TimmEncoder(name, cfg.in_channels, output_stride=16, **common)
    except SeglabError:  # the encoder has no output_stride argument: keep its native stride
        encoder = TimmEncoder(name, cfg.in_channels, **common)
    return DeepLabV3Plus(encoder, cfg.num_classes, 16 * cfg.base_channels, cfg.aspp_rates, cfg.norm)
