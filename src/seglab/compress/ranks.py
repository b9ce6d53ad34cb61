"""Rank selection: a fixed rank, an energy threshold or a target parameter ratio per layer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from seglab.errors import SeglabError

Method = Literal["rank", "energy", "ratio"]


@dataclass(frozen=True)
class RankRule:
    """How one compression setting picks each layer's rank.

    ``rank``: that rank, capped at the layer's full rank; ``energy``: the smallest
    rank whose singular values hold a fraction ``value`` of the squared spectrum;
    ``ratio``: the largest rank that keeps at most ``value`` of the layer's weights.
    """

    method: Method
    value: float

    @property
    def label(self) -> str:
        if self.method == "rank":
            return f"rank{int(self.value)}"
        return f"{self.method}{self.value:g}"

    def rank(self, singular_values: torch.Tensor, cost_per_rank: int, weights: int) -> int:
        """The rank for a layer with these singular values (descending) and weight count."""
        full = int(singular_values.numel())
        if self.method == "rank":
            return max(1, min(int(self.value), full))
        if self.method == "energy":
            return energy_rank(singular_values, self.value)
        return max(1, min(full, math.floor(self.value * weights / cost_per_rank)))


def energy_rank(singular_values: torch.Tensor, tau: float) -> int:
    """The smallest r with sum(s[:r]^2) >= tau * sum(s^2)."""
    energy = singular_values.double() ** 2
    total = float(energy.sum())
    if total == 0.0:
        return 1
    kept = torch.cumsum(energy, 0) / total
    reached = torch.nonzero(kept >= tau - 1e-12)
    return int(reached[0]) + 1 if len(reached) else int(singular_values.numel())


def parse_rules(
    ranks: str | None = None, energies: str | None = None, ratios: str | None = None
) -> list[RankRule]:
    """The settings of ``--ranks 50,100 --energies 0.95,0.9 --ratios 0.5``; SeglabError if bad."""
    rules = [RankRule("rank", v) for v in _numbers("--ranks", ranks, _check_rank)]
    rules += [RankRule("energy", v) for v in _numbers("--energies", energies, _check_energy)]
    rules += [RankRule("ratio", v) for v in _numbers("--ratios", ratios, _check_ratio)]
    if not rules:
        raise SeglabError(
            "no compression setting given", hint="pass e.g. --ranks 50,100 --energies 0.95,0.9"
        )
    return list(dict.fromkeys(rules))


def _numbers(option: str, text: str | None, check) -> list[float]:
    if text is None or not text.strip():
        return []
    values = []
    for part in text.split(","):
        try:
            value = float(part.strip())
        except ValueError:
            raise SeglabError(
                f"{option} {text!r}: {part.strip()!r} is not a number",
                hint=f"write {option} as comma-separated numbers",
            ) from None
        problem = check(value)
        if problem:
            raise SeglabError(f"{option} {text!r}: {part.strip()} {problem}", hint=_HINTS[option])
        values.append(value)
    return values


_HINTS = {
    "--ranks": "ranks are whole numbers >= 1, e.g. --ranks 16,32,64",
    "--energies": "energies are fractions of the spectrum in (0, 1], e.g. --energies 0.95,0.9",
    "--ratios": "ratios are fractions of each layer's weights in (0, 1), e.g. --ratios 0.5,0.3",
}


def _check_rank(v: float) -> str | None:
    return None if v >= 1 and v == int(v) else "is not a whole number >= 1"


def _check_energy(v: float) -> str | None:
    return None if 0.0 < v <= 1.0 else "is not in (0, 1]"


def _check_ratio(v: float) -> str | None:
    return None if 0.0 < v < 1.0 else "is not in (0, 1)"
