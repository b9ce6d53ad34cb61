"""The loss registry: ``@register_loss(name)`` and ``create_loss``."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from torch import nn

from seglab.config import LossConfig
from seglab.errors import SeglabError

LossFactory = Callable[[LossConfig, int, "int | None"], nn.Module]
_LOSSES: dict[str, LossFactory] = {}


def register_loss(name: str) -> Callable[[LossFactory], LossFactory]:
    def decorator(factory: LossFactory) -> LossFactory:
        if name in _LOSSES:
            raise ValueError(f"loss {name!r} is registered twice")
        _LOSSES[name] = factory
        return factory

    return decorator


def available_losses() -> list[str]:
    return sorted(_LOSSES)


def loss_factory(name: str, key: str = "loss.name") -> LossFactory:
    factory = _LOSSES.get(name)
    if factory is None:
        close = difflib.get_close_matches(name, _LOSSES, n=1)
        hint = (
            f"did you mean {close[0]}?" if close else f"use one of: {', '.join(available_losses())}"
        )
        raise SeglabError(f"unknown {key} {name!r}", hint=hint)
    return factory


def create_loss(cfg: LossConfig, num_classes: int, ignore_index: int | None = None) -> nn.Module:
    """The loss named by ``cfg.name`` for ``num_classes`` outputs (1 = binary)."""
    if cfg.class_weights is not None:
        expected = 2 if num_classes == 1 else num_classes
        if len(cfg.class_weights) != expected:
            raise SeglabError(
                f"loss.class_weights has {len(cfg.class_weights)} values, expected {expected}",
                hint="one weight per class (binary: [background, foreground])",
            )
    return loss_factory(cfg.name)(cfg, num_classes, ignore_index)
