"""The registered losses: single terms, the usual pairs, and weighted sums from the config."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from seglab.config import LossConfig
from seglab.losses import functional as Fn
from seglab.losses.registry import loss_factory, register_loss


class TermLoss(nn.Module):
    """One loss function with its settings bound: ``loss(logits, target)``."""

    def __init__(self, name: str, fn: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.name = name
        self.fn = fn

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.fn(logits, target)

    def extra_repr(self) -> str:
        return self.name


class WeightedSum(nn.Module):
    """sum_i w_i * loss_i(logits, target)."""

    def __init__(self, terms: dict[str, nn.Module], weights: dict[str, float]) -> None:
        super().__init__()
        self.terms = nn.ModuleDict(terms)
        self.weights = dict(weights)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros(())
        for name, term in self.terms.items():
            if self.weights[name]:
                total = total + self.weights[name] * term(logits, target)
        return total

    def extra_repr(self) -> str:
        return " + ".join(f"{w:g}*{n}" for n, w in self.weights.items())


@register_loss("bce")
@register_loss("ce")
def _ce(cfg: LossConfig, num_classes: int, ignore_index: int | None) -> nn.Module:
    fn = partial(Fn.cross_entropy, ignore_index=ignore_index, class_weights=cfg.class_weights)
    return TermLoss("ce", fn)


@register_loss("focal")
def _focal(cfg: LossConfig, num_classes: int, ignore_index: int | None) -> nn.Module:
    fn = partial(
        Fn.focal_loss,
        alpha=cfg.focal_alpha,
        gamma=cfg.focal_gamma,
        ignore_index=ignore_index,
        class_weights=cfg.class_weights,
    )
    return TermLoss("focal", fn)


@register_loss("dice")
def _dice(cfg: LossConfig, num_classes: int, ignore_index: int | None) -> nn.Module:
    return TermLoss(
        "dice", partial(Fn.soft_dice_loss, smooth=cfg.smooth, ignore_index=ignore_index)
    )


@register_loss("jaccard")
def _jaccard(cfg: LossConfig, num_classes: int, ignore_index: int | None) -> nn.Module:
    fn = partial(Fn.soft_jaccard_loss, smooth=cfg.smooth, ignore_index=ignore_index)
    return TermLoss("jaccard", fn)


@register_loss("tversky")
def _tversky(cfg: LossConfig, num_classes: int, ignore_index: int | None) -> nn.Module:
    fn = partial(
        Fn.tversky_loss,
        alpha=cfg.tversky_alpha,
        beta=cfg.tversky_beta,
        smooth=cfg.smooth,
        ignore_index=ignore_index,
    )
    return TermLoss("tversky", fn)


def weighted_sum(
    cfg: LossConfig, num_classes: int, ignore_index: int | None, weights: dict[str, float]
) -> WeightedSum:
    terms = {
        name: loss_factory(name, "loss.terms key")(cfg, num_classes, ignore_index)
        for name in weights
    }
    return WeightedSum(terms, weights)


class CeDiceSum(WeightedSum):
    """Cross-entropy plus soft Dice, weighted.

    With one output channel, no class weights and a class map at the logits' resolution
    (the usual binary case), both terms come from :func:`Fn.binary_ce_dice`: one sigmoid
    and one autograd node instead of two losses' worth of passes, the same value and
    gradient. Anything else goes term by term.
    """

    def __init__(
        self, cfg: LossConfig, num_classes: int, ignore_index: int | None, weights: dict[str, float]
    ) -> None:
        super().__init__(dict(weighted_sum(cfg, num_classes, ignore_index, weights).terms), weights)
        ce = next(name for name in weights if name != "dice")
        self.ce_weight, self.dice_weight = weights[ce], weights["dice"]
        self.fused = num_classes == 1 and cfg.class_weights is None
        self.smooth, self.ignore_index = cfg.smooth, ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.fused and isinstance(target, torch.Tensor) and logits.shape[1] == 1:
            return Fn.binary_ce_dice(
                logits, target, self.ce_weight, self.dice_weight, self.smooth, self.ignore_index
            )
        return super().forward(logits, target)


def _pair(first: str, second: str, default: tuple[float, float]):  # noqa: ANN202
    def factory(cfg: LossConfig, num_classes: int, ignore_index: int | None) -> nn.Module:
        w = cfg.weights or default
        weights = {first: w[0], second: w[1]}
        if {first, second} in ({"bce", "dice"}, {"ce", "dice"}):
            return CeDiceSum(cfg, num_classes, ignore_index, weights)
        return weighted_sum(cfg, num_classes, ignore_index, weights)

    return factory


register_loss("bce_dice")(_pair("bce", "dice", (0.5, 0.5)))
register_loss("focal_dice")(_pair("focal", "dice", (0.6, 0.4)))
register_loss("dice_ce")(_pair("dice", "ce", (0.5, 0.5)))


@register_loss("sum")
def _sum(cfg: LossConfig, num_classes: int, ignore_index: int | None) -> nn.Module:
    if "sum" in cfg.terms:
        from seglab.errors import SeglabError

        raise SeglabError("loss.terms cannot contain 'sum'", hint="list single losses")
    return weighted_sum(cfg, num_classes, ignore_index, dict(cfg.terms))
