import numpy as np
import pytest

from seglab.config import SplitConfig
from seglab.data.samples import Sample
from seglab.data.split import SPLITS, make_split
from seglab.errors import SeglabError


def volume(n, group="v", fg=None):
    out = []
    for i in range(n):
        mask = np.zeros((10, 10), np.int64)
        mask.flat[: int((fg[i] if fg else 0.1) * 100)] = 1
        out.append(Sample(f"{group}{i:03d}", np.zeros((1, 10, 10), np.float32), mask, group, i))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("block", [2, 5, 9])
def test_block_split_never_separates_a_slice_from_its_neighbour(seed, block):
    samples = volume(60) + volume(25, group="w")
    split = make_split(samples, SplitConfig(group_by="block", block_size=block), seed)
    part_of = {n: p for p in SPLITS for n in split[p]}
    assert all(split[p] for p in SPLITS)
    for a, b in zip(samples[:-1], samples[1:], strict=True):
        if a.group == b.group and a.name in part_of and b.name in part_of:
            assert part_of[a.name] == part_of[b.name], (a.name, b.name)
    kept = sum(len(split[p]) for p in SPLITS)
    assert kept + len(split.get("excluded", [])) == len(samples)


def test_volume_grouping_keeps_each_volume_whole():
    samples = volume(5, "a") + volume(5, "b") + volume(5, "c") + volume(5, "d")
    split = make_split(samples, SplitConfig(group_by="volume"), 0)
    for p in SPLITS:
        assert len({n[0] for n in split[p]}) == len(split[p]) // 5


def test_too_few_groups_is_a_clear_error():
    with pytest.raises(SeglabError, match="2 group"):
        make_split(volume(4, "a") + volume(4, "b"), SplitConfig(group_by="volume"), 0)


def test_stratified_split_spreads_sparse_and_dense_images():
    fg = [0.01] * 20 + [0.5] * 20
    samples = volume(40, fg=fg)
    split = make_split(samples, SplitConfig(stratify="mask_density", density_bins=2), 0)
    for p in ("val", "test"):
        dense = sum(int(n[1:]) >= 20 for n in split[p])
        assert dense == len(split[p]) - dense  # one sparse for each dense image


def test_explicit_names_are_used_and_checked():
    samples = volume(4)
    names = {"train": ["v000", "v001"], "val": ["v002"], "test": ["v003"]}
    assert make_split(samples, SplitConfig(names=names), 0) == names
    with pytest.raises(SeglabError, match="'nope' is not a sample name"):
        make_split(samples, SplitConfig(names={**names, "test": ["nope"]}), 0)


def test_a_split_seed_keeps_the_split_while_the_run_seed_changes():
    samples = volume(40)
    by_run_seed = [make_split(samples, SplitConfig(), seed) for seed in (0, 1)]
    assert by_run_seed[0] != by_run_seed[1]
    pinned = [make_split(samples, SplitConfig(seed=7), seed) for seed in (0, 1)]
    assert pinned[0] == pinned[1] == make_split(samples, SplitConfig(), 7)
