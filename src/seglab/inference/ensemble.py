"""Ensembles: the mean probabilities of several models (same classes, any architectures)."""

from __future__ import annotations

import numpy as np
import torch

from seglab.errors import SeglabError
from seglab.inference.predict import ProbabilityModel


class Ensemble:
    """Averages the probabilities of its members; each keeps its own normalisation."""

    def __init__(self, members: list[ProbabilityModel], names: list[str] | None = None) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        names = names or [f"member {i}" for i in range(len(members))]
        classes = {n: m.num_classes for n, m in zip(names, members, strict=True)}
        if len(set(classes.values())) > 1:
            listed = ", ".join(f"{n}: {k}" for n, k in classes.items())
            raise SeglabError(
                f"ensemble members predict different numbers of classes ({listed})",
                hint="ensemble only runs trained on the same classes",
            )
        self.members = members
        self.names = names
        self.num_classes = members[0].num_classes

    @torch.inference_mode()
    def probabilities(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        total: torch.Tensor | None = None
        for member in self.members:
            probs = member.probabilities(images).float()
            total = probs if total is None else total.add_(probs.to(total.device))
        assert total is not None
        return total.div_(len(self.members))
