"""Losses by name; binary (one logit) and multi-class (softmax); ignore_index everywhere.

``create_loss(cfg.loss, num_classes, ignore_index)`` builds the configured
loss; ``loss.name: sum`` with ``loss.terms`` adds any registered losses with
weights. The functions themselves live in :mod:`seglab.losses.functional`.
"""

from seglab.losses import modules as _modules  # noqa: F401 - registers the losses
from seglab.losses.functional import (
    binary_ce_dice,
    cross_entropy,
    focal_loss,
    one_hot,
    probabilities,
    soft_dice_loss,
    soft_jaccard_loss,
    tversky_loss,
    valid_mask,
)
from seglab.losses.registry import available_losses, create_loss, register_loss

__all__ = [
    "available_losses",
    "binary_ce_dice",
    "create_loss",
    "cross_entropy",
    "focal_loss",
    "one_hot",
    "probabilities",
    "register_loss",
    "soft_dice_loss",
    "soft_jaccard_loss",
    "tversky_loss",
    "valid_mask",
]
