"""Low-rank factorisation: exact at full rank, parameter counts by formula, what is skipped."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seglab.compress.factorize import (
    count_parameters,
    factorization_spec,
    factorize,
    plan_factorization,
)
from seglab.compress.ranks import RankRule
from seglab.config import ModelConfig
from seglab.models.lowrank import LowRankConv2d, LowRankLinear, apply_factorization
from seglab.models.registry import create_model

FULL = RankRule("rank", 10**6)


def _randomize_norms(model: nn.Module) -> nn.Module:
    """Non-trivial batch-norm statistics, so the test does not pass on identity norms."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


@pytest.mark.parametrize(
    ("cfg", "size"),
    [
        (ModelConfig(depth=2, base_channels=4), 48),
        (ModelConfig(name="swin_unet", embed_dim=16, depths=[1, 1], window_size=4), 32),
    ],
    ids=["unet", "swin_unet"],
)
def test_full_rank_factorization_reproduces_the_model(cfg, size):
    torch.manual_seed(0)
    model = _randomize_norms(create_model(cfg))
    plans = plan_factorization(model, FULL, skip_unprofitable=False)
    kinds = {p.kind for p in plans if p.skipped is None}
    expected = {"conv2d", "conv_transpose2d"} if cfg.name == "unet" else {"conv2d", "linear"}
    assert expected <= kinds
    factored = factorize(model, plans).eval()
    assert any(isinstance(m, (LowRankConv2d, LowRankLinear)) for m in factored.modules())
    x = torch.randn(2, cfg.in_channels, size, size)
    with torch.no_grad():
        diff = (factored(x) - model(x)).abs().max().item()
    assert diff <= 1e-4


def _toy() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(8, 16, 3, padding=1),  # weights 1152; rank r: r * (72 + 16)
        nn.Conv2d(16, 16, 3, padding=1, groups=16),  # depthwise: left alone
        nn.ConvTranspose2d(16, 8, 2, stride=2),  # weights 512; rank r: r * (64 + 8)
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, 24),  # weights 12288; rank r: r * (512 + 24)
    )


def test_parameter_count_matches_the_formula():
    model = _toy()
    factored = factorize(model, plan_factorization(model, RankRule("rank", 3)))
    before = count_parameters(model)
    expected = before - (1152 + 512 + 12288) + 3 * (72 + 16) + 3 * (64 + 8) + 3 * (512 + 24)
    assert count_parameters(factored) == expected
    x = torch.randn(1, 8, 4, 4)
    assert factored(x).shape == model(x).shape


def test_grouped_and_depthwise_layers_are_left_alone():
    model = _toy()
    plans = plan_factorization(model, RankRule("rank", 2))
    by_name = {p.name: p for p in plans}
    assert by_name["1"].skipped == "grouped"
    factored = factorize(model, plans)
    assert type(factored[1]) is nn.Conv2d and factored[1].groups == 16
    assert "1" not in factorization_spec(plans)


def test_layers_that_would_not_save_are_skipped_and_listed():
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Conv2d(8, 64, 3))
    plans = plan_factorization(model, RankRule("rank", 8))
    first, second = plans
    # 1 -> 8, 3x3: full rank 8 costs 8 * (9 + 8) = 136 > 72 weights: skipped
    assert first.skipped == "no weight saving" and first.weights_after > first.weights_before
    # 8 -> 64, 3x3, rank 8: 8 * (72 + 64) = 1088 < 4608
    assert second.skipped is None and second.weights_after == 1088
    assert list(factorization_spec(plans)) == ["1"]


def test_transposed_convolution_skipped_when_multiply_adds_grow():
    # 16 -> 16, 2x2 stride 2, rank 12: weights 12 * (64 + 16) = 960 < 1024, but the 1x1 runs
    # at 4x the positions: 12 * (64 + 64) = 1536 > 1024 multiply-adds
    plans = plan_factorization(nn.ConvTranspose2d(16, 16, 2, stride=2), RankRule("rank", 12))
    assert plans[0].skipped == "no multiply-add saving"


def test_a_compressed_structure_rebuilds_from_its_spec():
    model = _toy()
    plans = plan_factorization(model, RankRule("ratio", 0.5))
    factored = factorize(model, plans)
    rebuilt = apply_factorization(_toy(), factorization_spec(plans))
    rebuilt.load_state_dict(factored.state_dict())  # strict: same names and shapes
    x = torch.randn(1, 8, 4, 4)
    assert torch.allclose(rebuilt(x), factored(x))
