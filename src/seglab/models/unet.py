"""The U-Net baseline (Ronneberger et al. 2015), configurable in depth and width.

Options: squeeze-excitation after every conv block (``se_unet``, the hyperspectral
work's "SECompressorUNet" body), additive attention gates on the skip connections
(``attention_unet``, Oktay et al. 2018), residual conv blocks (``res_unet``: the
shortcut spans each block's second convolution), deep supervision, and a U-Net that works
at 1/f of the input's resolution (``space_to_depth``: each f x f block of pixels becomes
f*f input channels, each output position f*f logits, one per pixel), and a 3x3 output
convolution in place of the 1x1 (``head_kernel``). With all options
off the network is exactly the foundation's baseline (same weights layout, same speed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from seglab.config import ModelConfig
from seglab.models.blocks import (
    AttentionGate,
    ConvBlock,
    ResidualConvBlock,
    SqueezeExcite,
    pad_to_multiple,
)
from seglab.models.registry import register_model

__all__ = ["UNet", "pad_to_multiple"]


class UNet(nn.Module):
    """A U-Net for any number of input channels and classes and any input size.

    Inputs whose sides are not multiples of ``2**depth`` are padded (reflect)
    internally and the output is cropped back to the input size. ``widths`` (depth + 1
    channel counts, full resolution first) replaces the doubling of ``base_channels``
    from level to level. With ``deep_supervision`` the decoder stages above the last one
    get 1x1 heads; in training mode their logits, at each stage's own resolution, are left
    in ``aux_outputs``, deepest first (``aux_extent``: the padded input they cover), while
    ``forward`` still returns the main logits only.
    ``space_to_depth`` = f > 1 folds each f x f block of input pixels into channels
    (``pixel_unshuffle``), runs the U-Net on the f-times smaller image, and unfolds f*f
    logits per position back into one per pixel (``pixel_shuffle``): the output keeps the
    input's resolution, every level's features have f x f fewer pixels. ``head_kernel`` 3
    makes the output convolution 3x3: each logit (with a fold, each of the f*f logits of a
    position) reads the features of the neighbouring positions too.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 1,
        depth: int = 4,
        base_channels: int = 16,
        norm: str = "batch",
        dropout: float = 0.0,
        se: bool = False,
        attention: bool = False,
        deep_supervision: bool = False,
        grad_checkpointing: bool = False,
        residual: bool = False,
        widths: list[int] | None = None,
        space_to_depth: int = 1,
        head_kernel: int = 1,
    ) -> None:
        super().__init__()
        self.grad_checkpointing = grad_checkpointing
        if widths is None:
            widths = [base_channels * 2**i for i in range(depth + 1)]
        elif len(widths) != depth + 1:
            raise ValueError(f"widths {widths} must have depth + 1 = {depth + 1} entries")
        widths = list(widths)
        if space_to_depth < 1:
            raise ValueError(f"space_to_depth must be at least 1, got {space_to_depth}")
        self.fold = space_to_depth
        self.multiple = 2**depth * space_to_depth
        block = ResidualConvBlock if residual else ConvBlock
        self.stem = block(in_channels * space_to_depth**2, widths[0], norm)
        self.down = nn.ModuleList(
            block(widths[i], widths[i + 1], norm, dropout if i == depth - 1 else 0.0)
            for i in range(depth)
        )
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
            for i in reversed(range(depth))
        )
        self.decode = nn.ModuleList(
            block(2 * widths[i], widths[i], norm, dropout) for i in reversed(range(depth))
        )
        if head_kernel not in (1, 3):
            raise ValueError(f"head_kernel must be 1 or 3, got {head_kernel}")
        self.head = nn.Conv2d(
            widths[0], num_classes * space_to_depth**2, head_kernel, padding=head_kernel // 2
        )
        # optional parts exist only when switched on, so the baseline's state dict is unchanged
        if se:
            self.se_down = nn.ModuleList(SqueezeExcite(w) for w in widths)
            self.se_up = nn.ModuleList(SqueezeExcite(widths[i]) for i in reversed(range(depth)))
        if attention:
            self.gates = nn.ModuleList(
                AttentionGate(widths[i], widths[i], max(widths[i] // 2, 1))
                for i in reversed(range(depth))
            )
        if deep_supervision:
            self.aux_heads = nn.ModuleList(
                nn.Conv2d(widths[i], num_classes, 1) for i in reversed(range(1, depth))
            )
        self.aux_outputs: list[torch.Tensor] = []
        self.aux_extent: tuple[int, int] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, self.multiple)
        padded = x.shape[-2:]
        if self.fold > 1:
            x = F.pixel_unshuffle(x, self.fold)
        se_down = getattr(self, "se_down", None)
        se_up = getattr(self, "se_up", None)
        gates = getattr(self, "gates", None)
        aux_heads = getattr(self, "aux_heads", None)
        skips = [self._run(self.stem, x)]
        if se_down is not None:
            skips[0] = se_down[0](skips[0])
        for i, block in enumerate(self.down):
            y = self._run(block, F.max_pool2d(skips[-1], 2))
            skips.append(se_down[i + 1](y) if se_down is not None else y)
        y = skips.pop()
        decoded = []
        for i, (up, block) in enumerate(zip(self.up, self.decode, strict=True)):
            y = up(y)
            skip = skips.pop()
            if gates is not None:
                skip = gates[i](skip, y)
            y = self._run(block, torch.cat([skip, y], dim=1))
            if se_up is not None:
                y = se_up[i](y)
            decoded.append(y)
        if aux_heads is not None and self.training:
            self.aux_outputs = [head(d) for head, d in zip(aux_heads, decoded, strict=False)]
            self.aux_extent = tuple(padded)
        else:
            self.aux_outputs = []
        logits = self.head(y)
        if self.fold > 1:
            logits = F.pixel_shuffle(logits, self.fold)
        return logits[..., :height, :width]

    def _run(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``block(x)``, recomputed in backward instead of stored with grad_checkpointing."""
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, x, use_reentrant=False)
        return block(x)


def _build(cfg: ModelConfig, **switched_on: bool) -> UNet:
    """The U-Net of ``cfg``, with the options a family name implies switched on."""
    cfg = cfg.model_copy(update=switched_on)
    return UNet(
        in_channels=cfg.in_channels,
        num_classes=cfg.num_classes,
        depth=cfg.depth,
        base_channels=cfg.base_channels,
        norm=cfg.norm,
        dropout=cfg.dropout,
        se=cfg.se,
        attention=cfg.attention,
        deep_supervision=cfg.deep_supervision,
        grad_checkpointing=cfg.grad_checkpointing,
        residual=cfg.residual,
        widths=cfg.widths,
        space_to_depth=cfg.space_to_depth,
        head_kernel=cfg.head_kernel,
    )


# the options of ModelConfig the U-Net family reads (see registry.FAMILY_OPTIONS)
UNET_READS = (
    "depth",
    "base_channels",
    "widths",
    "norm",
    "dropout",
    "se",
    "attention",
    "residual",
    "deep_supervision",
    "space_to_depth",
    "head_kernel",
)


@register_model("unet", UNET_READS)
def build_unet(cfg: ModelConfig) -> UNet:
    return _build(cfg)


@register_model("se_unet", UNET_READS)
def build_se_unet(cfg: ModelConfig) -> UNet:
    """U-Net with squeeze-excitation after every conv block."""
    return _build(cfg, se=True)


@register_model("attention_unet", UNET_READS)
def build_attention_unet(cfg: ModelConfig) -> UNet:
    """U-Net with attention gates on the skip connections."""
    return _build(cfg, attention=True)


@register_model("res_unet", UNET_READS)
def build_res_unet(cfg: ModelConfig) -> UNet:
    """U-Net whose conv blocks add their input back (residual blocks)."""
    return _build(cfg, residual=True)
