"""Rank selection: energy threshold, fixed rank (capped), parameter ratio; bad settings."""

from __future__ import annotations

import pytest
import torch

from seglab.compress.ranks import RankRule, energy_rank, parse_rules
from seglab.errors import SeglabError

S = torch.tensor([3.0, 2.0, 1.0, 0.0])  # squared: 9, 4, 1, 0 of 14


@pytest.mark.parametrize(("tau", "rank"), [(0.6, 1), (9 / 14, 1), (0.65, 2), (0.9, 2), (1.0, 3)])
def test_energy_rank_is_the_smallest_holding_tau(tau, rank):
    assert energy_rank(S, tau) == rank


def test_fixed_rank_is_capped_at_the_layer_rank():
    assert RankRule("rank", 2).rank(S, 10, 40) == 2
    assert RankRule("rank", 100).rank(S, 10, 40) == 4


def test_ratio_keeps_at_most_that_share_of_the_weights():
    s = torch.ones(100)
    rank = RankRule("ratio", 0.5).rank(s, 200, 100 * 100)  # Linear 100 -> 100
    assert rank == 25 and rank * 200 <= 0.5 * 100 * 100


def test_parse_rules_reads_all_settings_in_order():
    rules = parse_rules("50,100", "0.95", "0.5")
    assert [r.label for r in rules] == ["rank50", "rank100", "energy0.95", "ratio0.5"]


@pytest.mark.parametrize(
    ("ranks", "energies", "culprit"),
    [("50,x", None, "'x'"), ("0", None, "0"), ("2.5", None, "2.5"), (None, "0.9,1.5", "1.5")],
)
def test_bad_settings_name_the_culprit(ranks, energies, culprit):
    with pytest.raises(SeglabError, match=culprit):
        parse_rules(ranks, energies)


def test_no_setting_is_an_error():
    with pytest.raises(SeglabError, match="no compression setting"):
        parse_rules(None, " ", None)
