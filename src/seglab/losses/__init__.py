"""Losses, registered by name; binary (one logit) and multi-class (softmax)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from seglab.config import LossConfig
from seglab.errors import SeglabError

LossFactory = Callable[[LossConfig, int, "int | None"], nn.Module]
_LOSSES: dict[str, LossFactory] = {}


def register_loss(name: str) -> Callable[[LossFactory], LossFactory]:
    def decorator(factory: LossFactory) -> LossFactory:
        _LOSSES[name] = factory
        return factory

    return decorator


def available_losses() -> list[str]:
    return sorted(_LOSSES)


def create_loss(cfg: LossConfig, num_classes: int, ignore_index: int | None = None) -> nn.Module:
    factory = _LOSSES.get(cfg.name)
    if factory is None:
        raise SeglabError(
            f"unknown loss.name {cfg.name!r}", hint=f"use one of: {', '.join(available_losses())}"
        )
    return factory(cfg, num_classes, ignore_index)


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Sigmoid for one output channel, softmax otherwise."""
    return torch.sigmoid(logits) if logits.shape[1] == 1 else logits.softmax(dim=1)


def one_hot(target: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, H, W) class map -> (N, C, H, W) float; one channel = the foreground."""
    if channels == 1:
        return (target == 1).unsqueeze(1).float()
    return F.one_hot(target.clamp(0, channels - 1), channels).permute(0, 3, 1, 2).float()


def soft_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    smooth: float = 1.0,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """1 - soft Dice, averaged over channels, pixels pooled over the batch."""
    probs = probabilities(logits)
    truth = one_hot(target, logits.shape[1])
    if ignore_index is not None:
        keep = (target != ignore_index).unsqueeze(1).float()
        probs, truth = probs * keep, truth * keep
    dims = (0, 2, 3)
    inter = (probs * truth).sum(dims)
    total = probs.sum(dims) + truth.sum(dims)
    return 1.0 - ((2 * inter + smooth) / (total + smooth)).mean()


class BceDiceLoss(nn.Module):
    """Cross-entropy (binary or multi-class) plus soft Dice, equally weighted."""

    def __init__(self, smooth: float = 1.0, ignore_index: int | None = None) -> None:
        super().__init__()
        self.smooth = smooth
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] == 1:
            weight = None
            if self.ignore_index is not None:
                weight = (target != self.ignore_index).unsqueeze(1).float()
            ce = F.binary_cross_entropy_with_logits(
                logits, (target == 1).unsqueeze(1).float(), weight=weight
            )
        else:
            ignore = -100 if self.ignore_index is None else self.ignore_index
            ce = F.cross_entropy(logits, target, ignore_index=ignore)
        dice = soft_dice_loss(logits, target, self.smooth, self.ignore_index)
        return 0.5 * ce + 0.5 * dice


@register_loss("bce_dice")
def _bce_dice(cfg: LossConfig, num_classes: int, ignore_index: int | None) -> nn.Module:
    return BceDiceLoss(smooth=cfg.smooth, ignore_index=ignore_index)
