"""Hybrid CNN-transformer U-Nets on timm encoders.

- ``coatnet_unet``: CoAtNet encoder (convolution stages, then relative-attention
  stages) with the U-Net decoder of :mod:`seglab.models.timm_unet`. CoAtNet's
  attention is sized for one input: inputs are padded up to ``model.img_size``.
- ``swinv2_aspp_unet``: the crack experiment's "SwinV2CnnAsppUNet": a SwinV2
  encoder (window ``model.window_size``, 8 by default; ``embed_dim`` and
  ``depths`` configurable), an ASPP bottleneck (rates ``model.aspp_rates``,
  1/6/12/18 by default) and a CNN decoder with CBAM attention on every stage.
"""

from __future__ import annotations

from seglab.config import ModelConfig
from seglab.models.blocks import ASPP, ConvBlock
from seglab.models.encoders import TimmEncoder
from seglab.models.registry import register_model
from seglab.models.swin_unet import heads_for
from seglab.models.timm_unet import TIMM_UNET_READS, EncoderDecoder, UNetDecoder, build_timm_unet


@register_model("coatnet_unet", TIMM_UNET_READS)
def build_coatnet_unet(cfg: ModelConfig) -> EncoderDecoder:
    """U-Net decoder on a CoAtNet encoder (default coatnet_0_rw_224)."""
    return build_timm_unet(cfg, "coatnet_0_rw_224")


@register_model(
    "swinv2_aspp_unet",
    (*TIMM_UNET_READS, "embed_dim", "depths", "window_size", "aspp_rates"),
)
def build_swinv2_aspp_unet(cfg: ModelConfig) -> EncoderDecoder:
    """SwinV2 encoder + ASPP + CBAM CNN decoder (pretrained needs embed_dim 96, depths 2,2,6,2)."""
    dims = [cfg.embed_dim * 2**i for i in range(len(cfg.depths))]
    encoder = TimmEncoder(
        cfg.encoder or "swinv2_tiny_window8_256",
        cfg.in_channels,
        pretrained=cfg.pretrained,
        img_size=cfg.img_size,
        grad_checkpointing=cfg.grad_checkpointing,
        embed_dim=cfg.embed_dim,
        depths=tuple(cfg.depths),
        num_heads=tuple(heads_for(d) for d in dims),
        window_size=cfg.window_size,
    )
    base = cfg.base_channels
    aspp_width = base * 2 ** len(encoder.channels)
    bottleneck = ASPP(encoder.channels[-1], aspp_width, cfg.aspp_rates, cfg.norm)
    decoder = UNetDecoder(
        [*encoder.channels[:-1], aspp_width],
        base,
        cfg.num_classes,
        base,
        cfg.norm,
        cbam=True,
        deep_supervision=cfg.deep_supervision,
    )
    return EncoderDecoder(encoder, decoder, ConvBlock(cfg.in_channels, base, cfg.norm), bottleneck)
