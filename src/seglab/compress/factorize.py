"""Low-rank factorisation of a model's layers from the truncated SVD of their weights.

Each plain ``Conv2d`` (k x k, in -> out) becomes a ``k x k, in -> r`` convolution
and a ``1 x 1, r -> out`` convolution, initialised from the SVD of the weight
reshaped to (out, in*k*k) with the singular values split evenly (square roots)
between the two factors and the bias on the second; ``Linear`` and
``ConvTranspose2d`` likewise. Grouped and depthwise convolutions are left alone,
and so is every layer where the factorisation would not save weights and
multiply-adds: :func:`plan_factorization` lists those with the reason.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from seglab.compress.ranks import RankRule
from seglab.models.lowrank import LOW_RANK, factorizable, low_rank_layer, replace_module


@dataclass(frozen=True)
class LayerPlan:
    name: str
    kind: str  # conv2d | linear | conv_transpose2d
    shape: str  # out x in x kh x kw (out x in for linear)
    full_rank: int
    rank: int
    weights_before: int  # weights only (biases are kept as they are)
    weights_after: int
    macs_before: int  # per output (conv, linear) or input (transposed conv) position
    macs_after: int
    skipped: str | None = None  # why the layer stays as it is

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def layer_matrix(module: nn.Module) -> torch.Tensor:
    """The weight as an (out, in*kh*kw) matrix."""
    w = module.weight.detach()
    if isinstance(module, nn.ConvTranspose2d):
        w = w.transpose(0, 1)  # (in, out, kh, kw) -> (out, in, kh, kw)
    return w.reshape(w.shape[0], -1)


def costs(module: nn.Module, rank: int) -> tuple[int, int, int, int]:
    """Weights and MACs per position of ``module`` before and after a rank-``rank`` split."""
    out_ch, fan_in = layer_matrix(module).shape
    before = out_ch * fan_in
    after = rank * (fan_in + out_ch)
    macs_after = after
    if isinstance(module, nn.ConvTranspose2d):  # the 1x1 runs at the (stride x) larger output
        sh, sw = module.stride
        macs_after = rank * (fan_in + out_ch * sh * sw)
    return before, after, before, macs_after


def plan_factorization(
    model: nn.Module, rule: RankRule, skip_unprofitable: bool = True
) -> list[LayerPlan]:
    """For every Conv2d, ConvTranspose2d and Linear layer: its rank, costs, or why it is skipped."""
    plans = []
    for name, module in model.named_modules():
        if type(module) not in LOW_RANK:
            continue
        matrix = layer_matrix(module)
        kind = LOW_RANK[type(module)].kind  # type: ignore[attr-defined]
        shape = "x".join(str(d) for d in _shape(module))
        full = min(matrix.shape)
        if not factorizable(module):
            plans.append(LayerPlan(name, kind, shape, full, full, 0, 0, 0, 0, "grouped"))
            continue
        s = torch.linalg.svdvals(matrix.double())
        rank = rule.rank(s, sum(matrix.shape), matrix.numel())
        wb, wa, mb, ma = costs(module, rank)
        skipped = None
        if skip_unprofitable and wa >= wb:
            skipped = "no weight saving"
        elif skip_unprofitable and ma >= mb:
            skipped = "no multiply-add saving"
        plans.append(LayerPlan(name, kind, shape, full, rank, wb, wa, mb, ma, skipped))
    return plans


def _shape(module: nn.Module) -> tuple[int, ...]:
    w = module.weight
    if isinstance(module, nn.ConvTranspose2d):
        return (w.shape[1] * module.groups, w.shape[0], *w.shape[2:])
    return tuple(w.shape)


def factorize(model: nn.Module, plans: list[LayerPlan]) -> nn.Module:
    """A copy of ``model`` with the planned (not skipped) layers split from their SVD."""
    model = copy.deepcopy(model)
    for plan in plans:
        if plan.skipped is None:
            original = model.get_submodule(plan.name)
            replace_module(model, plan.name, split_layer(original, plan.rank))
    return model


def factorization_spec(plans: list[LayerPlan]) -> dict[str, dict[str, Any]]:
    """What ``model.json`` records so a model folder can rebuild the low-rank layers."""
    return {p.name: {"kind": p.kind, "rank": p.rank} for p in plans if p.skipped is None}


@torch.no_grad()
def split_layer(module: nn.Module, rank: int) -> nn.Module:
    """The low-rank layer of ``module`` with factors from its truncated SVD."""
    layer = low_rank_layer(module, rank)
    matrix = layer_matrix(module).double()
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    root = s[:rank].sqrt()
    left = (u[:, :rank] * root).to(module.weight.dtype)  # (out, r)
    right = (root[:, None] * vh[:rank]).to(module.weight.dtype)  # (r, in*kh*kw)
    first, second = layer.first, layer.second
    if isinstance(module, nn.Linear):
        first.weight.copy_(right)
        second.weight.copy_(left)
    elif isinstance(module, nn.ConvTranspose2d):
        kh, kw = module.kernel_size
        first.weight.copy_(right.reshape(rank, module.in_channels, kh, kw).transpose(0, 1))
        second.weight.copy_(left[:, :, None, None])
    else:
        first.weight.copy_(right.reshape(first.weight.shape))
        second.weight.copy_(left[:, :, None, None])
    if module.bias is not None:
        second.bias.copy_(module.bias)
    return layer.to(module.weight.device)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
