"""Low-rank layers: a convolution or linear layer as two smaller ones, and their rebuild.

A ``LowRankConv2d`` is a ``k x k, in -> r`` convolution followed by a ``1 x 1,
r -> out`` convolution (the bias on the second); ``LowRankLinear`` and
``LowRankConvTranspose2d`` are the same idea for linear and transposed
convolution layers. How the factors are initialised (a truncated SVD) lives in
``seglab.compress``; here are only the modules and :func:`apply_factorization`,
which gives a freshly created model the factorised structure recorded in a
model folder's ``model.json`` (``{"layer.name": {"kind": ..., "rank": r}}``), so
its weights load without knowing how it was compressed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from seglab.errors import SeglabError


class LowRankConv2d(nn.Module):
    """``first``: k x k conv in -> rank (no bias); ``second``: 1 x 1 conv rank -> out."""

    kind = "conv2d"

    def __init__(self, conv: nn.Conv2d, rank: int) -> None:
        super().__init__()
        self.rank = rank
        self.first = nn.Conv2d(
            conv.in_channels,
            rank,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            bias=False,
            padding_mode=conv.padding_mode,
        )
        self.second = nn.Conv2d(rank, conv.out_channels, 1, bias=conv.bias is not None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


class LowRankLinear(nn.Module):
    """``first``: in -> rank (no bias); ``second``: rank -> out."""

    kind = "linear"

    def __init__(self, linear: nn.Linear, rank: int) -> None:
        super().__init__()
        self.rank = rank
        self.first = nn.Linear(linear.in_features, rank, bias=False)
        self.second = nn.Linear(rank, linear.out_features, bias=linear.bias is not None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


class LowRankConvTranspose2d(nn.Module):
    """``first``: k x k transposed conv in -> rank (no bias); ``second``: 1 x 1 conv rank -> out."""

    kind = "conv_transpose2d"

    def __init__(self, conv: nn.ConvTranspose2d, rank: int) -> None:
        super().__init__()
        self.rank = rank
        self.first = nn.ConvTranspose2d(
            conv.in_channels,
            rank,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            output_padding=conv.output_padding,
            dilation=conv.dilation,
            bias=False,
        )
        self.second = nn.Conv2d(rank, conv.out_channels, 1, bias=conv.bias is not None)

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        return self.second(self.first(x, output_size=output_size))


LOW_RANK: dict[type[nn.Module], type[nn.Module]] = {
    nn.Conv2d: LowRankConv2d,
    nn.Linear: LowRankLinear,
    nn.ConvTranspose2d: LowRankConvTranspose2d,
}
KINDS = {cls.kind: cls for cls in LOW_RANK.values()}  # type: ignore[attr-defined]


def factorizable(module: nn.Module) -> bool:
    """Plain (ungrouped) Conv2d, ConvTranspose2d and Linear layers; others are left alone."""
    if type(module) not in LOW_RANK:
        return False
    return getattr(module, "groups", 1) == 1


def low_rank_layer(module: nn.Module, rank: int) -> nn.Module:
    """The empty low-rank replacement of ``module`` (weights to be set or loaded)."""
    if not factorizable(module):
        raise ValueError(f"{type(module).__name__} (groups > 1?) cannot be factorised")
    return LOW_RANK[type(module)](module, rank)


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def apply_factorization(model: nn.Module, spec: dict[str, dict[str, Any]]) -> nn.Module:
    """Replace the layers named in ``spec`` by empty low-rank layers of the recorded ranks."""
    for name, entry in spec.items():
        try:
            original = model.get_submodule(name)
        except AttributeError:
            raise SeglabError(
                f"model.json: factorised layer {name!r} is not in the model",
                hint="the model folder does not match its model config",
            ) from None
        kind = LOW_RANK.get(type(original))
        if kind is None or kind.kind != entry.get("kind"):  # type: ignore[attr-defined]
            raise SeglabError(
                f"model.json: layer {name!r} is a {type(original).__name__}, "
                f"recorded as {entry.get('kind')!r}",
                hint="the model folder does not match its model config",
            )
        replace_module(model, name, low_rank_layer(original, int(entry["rank"])))
    return model
