"""A run's best epochs as one network: the mean of their probabilities.

``train.checkpoint.ensemble: K`` keeps the K best validated epochs of a run instead of the
best alone. Their weights go into one :class:`EpochEnsemble`, saved in the run's model
folder like any network, so that evaluation, ``seglab predict`` and export all use the
same mean, and its output reads as logits like any network's.
"""

from __future__ import annotations

import torch
from torch import nn

# probabilities are clamped this far from 0 and 1 before their logits are taken: a
# logit of about +-16, which float32's sigmoid maps back to the clamped value
EDGE = 1e-7


class EpochEnsemble(nn.Module):
    """``members`` (one architecture, different weights) as one network whose output,
    read as logits (a sigmoid for one channel, a softmax over channels otherwise), gives
    the mean of the members' probabilities: ``logit(mean p)`` for one channel, ``log(mean
    p)`` for several. Computed in float32. The members' auxiliary outputs (deep
    supervision) are not carried: the ensemble is for inference, and fine-tuning it
    (``seglab compress``) trains the members through the mean only."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an epoch ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total: torch.Tensor | None = None
        for member in self.members:
            logits = member(x).float()
            probs = torch.sigmoid(logits) if logits.shape[1] == 1 else logits.softmax(1)
            total = probs if total is None else total + probs
        assert total is not None
        mean = (total / len(self.members)).clamp(EDGE, 1 - EDGE)
        if mean.shape[1] == 1:
            return torch.log(mean) - torch.log1p(-mean)
        return torch.log(mean)


def single_network(model: nn.Module) -> nn.Module:
    """The network one checkpoint's weights load into: an ensemble's first member (all
    share its architecture), any other model itself."""
    return model.members[0] if isinstance(model, EpochEnsemble) else model
