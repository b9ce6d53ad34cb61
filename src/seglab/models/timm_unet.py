"""U-Nets on timm encoders: any ``timm`` backbone (``features_only=True``) + our decoder.

``timm_unet`` takes any encoder name (``model.encoder``: resnet, efficientnet,
convnext, maxvit ...); ``convnext_unet`` is the same with a ConvNeXt default.
The decoder upsamples the deepest feature map stage by stage, concatenating the
encoder feature of each stride and, at full resolution, a small conv stem of the
input itself (so fine detail survives encoders whose first stride is 4).
"""

from __future__ import annotations

import torch
from torch import nn

from seglab.config import ModelConfig
from seglab.models.blocks import CBAM, ConvBlock, upsample_to
from seglab.models.encoders import TimmEncoder
from seglab.models.registry import register_model


class UNetDecoder(nn.Module):
    """Decoder over encoder features (shallow to deep) plus a full-resolution stem feature.

    Stage ``i`` (feature ``i`` as skip) has ``base * 2**(i+1)`` channels, the final
    full-resolution stage ``base``. ``cbam`` adds CBAM attention after every stage.
    With ``deep_supervision`` the stages above the last get 1x1 heads whose logits, at
    each stage's own resolution, land in ``aux_outputs`` in training mode.
    """

    def __init__(
        self,
        enc_channels: list[int],
        stem_channels: int,
        num_classes: int,
        base: int,
        norm: str = "batch",
        cbam: bool = False,
        deep_supervision: bool = False,
    ) -> None:
        super().__init__()
        n = len(enc_channels)
        widths = [base * 2 ** (i + 1) for i in range(n - 1)]
        blocks, attn = [], []
        below = enc_channels[-1]
        for i in reversed(range(n - 1)):
            blocks.append(ConvBlock(enc_channels[i] + below, widths[i], norm))
            attn.append(CBAM(widths[i]) if cbam else nn.Identity())
            below = widths[i]
        self.blocks = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attn)
        self.final = ConvBlock(stem_channels + below, base, norm)
        self.head = nn.Conv2d(base, num_classes, 1)
        self.aux_heads = (
            nn.ModuleList(nn.Conv2d(widths[i], num_classes, 1) for i in reversed(range(n - 1)))
            if deep_supervision
            else None
        )
        self.aux_outputs: list[torch.Tensor] = []

    def forward(self, features: list[torch.Tensor], stem: torch.Tensor) -> torch.Tensor:
        y = features[-1]
        decoded = []
        for block, attn, skip in zip(self.blocks, self.attn, reversed(features[:-1]), strict=True):
            y = attn(block(torch.cat([skip, upsample_to(y, skip.shape[-2:])], dim=1)))
            decoded.append(y)
        y = self.final(torch.cat([stem, upsample_to(y, stem.shape[-2:])], dim=1))
        if self.aux_heads is not None and self.training:
            self.aux_outputs = [head(d) for head, d in zip(self.aux_heads, decoded, strict=True)]
        else:
            self.aux_outputs = []
        return self.head(y)


class EncoderDecoder(nn.Module):
    """Pad, encode, (optional bottleneck), decode, crop; shared by the timm-based U-Nets."""

    def __init__(
        self,
        encoder: TimmEncoder,
        decoder: UNetDecoder,
        stem: nn.Module,
        bottleneck: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.bottleneck = bottleneck if bottleneck is not None else nn.Identity()
        self.stem = stem
        self.decoder = decoder
        self.aux_extent: tuple[int, int] | None = None  # the padded input aux_outputs cover

    @property
    def aux_outputs(self) -> list[torch.Tensor]:
        return self.decoder.aux_outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = self.encoder.pad_input(x)
        self.aux_extent = tuple(x.shape[-2:])
        features = self.encoder(x)
        features[-1] = self.bottleneck(features[-1])
        return self.decoder(features, self.stem(x))[..., :height, :width]


def build_timm_unet(
    cfg: ModelConfig, default_encoder: str, cbam: bool = False, **encoder_kwargs
) -> EncoderDecoder:
    encoder = TimmEncoder(
        cfg.encoder or default_encoder,
        cfg.in_channels,
        pretrained=cfg.pretrained,
        img_size=cfg.img_size,
        grad_checkpointing=cfg.grad_checkpointing,
        **encoder_kwargs,
    )
    base = cfg.base_channels
    stem = ConvBlock(cfg.in_channels, base, cfg.norm)
    decoder = UNetDecoder(
        encoder.channels, base, cfg.num_classes, base, cfg.norm, cbam, cfg.deep_supervision
    )
    return EncoderDecoder(encoder, decoder, stem)


# the options of ModelConfig a U-Net on a timm encoder reads (see registry.FAMILY_OPTIONS)
TIMM_UNET_READS = ("encoder", "pretrained", "img_size", "base_channels", "norm", "deep_supervision")


@register_model("timm_unet", TIMM_UNET_READS)
def build_generic(cfg: ModelConfig) -> EncoderDecoder:
    """U-Net decoder on any timm encoder (``model.encoder``, default resnet34)."""
    return build_timm_unet(cfg, "resnet34")


@register_model("convnext_unet", TIMM_UNET_READS)
def build_convnext_unet(cfg: ModelConfig) -> EncoderDecoder:
    """U-Net decoder on a ConvNeXt encoder (default convnext_tiny)."""
    return build_timm_unet(cfg, "convnext_tiny")
