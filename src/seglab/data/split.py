"""Train / validation / test splits: seeded ratios or explicit lists.

Splitting works on *units*: single images, whole volumes (``group_by: volume``)
or contiguous blocks of slices (``group_by: block``). With blocks, the first
slice of a block that borders a block of another split is left out (listed
under ``excluded``), so no slice has a neighbour in another split.
``stratify: mask_density`` deals each foreground-fraction bin out by the ratios,
so every split sees sparse and dense images alike.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from seglab.config import SplitConfig
from seglab.data.samples import Sample
from seglab.errors import SeglabError

SPLITS = ("train", "val", "test")


def split_names(names: list[str], ratios: SplitConfig, seed: int) -> dict[str, list[str]]:
    """Shuffle ``names`` with ``seed`` and cut them by ``ratios``; every split gets >= 1."""
    n = len(names)
    if n < 3:
        raise ValueError("need at least 3 names to split")
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_val, _ = _counts(n, ratios)
    shuffled = [names[i] for i in order]
    return {
        "train": sorted(shuffled[:n_train]),
        "val": sorted(shuffled[n_train : n_train + n_val]),
        "test": sorted(shuffled[n_train + n_val :]),
    }


def _counts(n: int, ratios: SplitConfig) -> tuple[int, int, int]:
    n_val = max(1, round(ratios.val * n))
    n_test = max(1, round(ratios.test * n))
    n_train = n - n_val - n_test
    if n_train < 1:
        n_train, n_val, n_test = n - 2, 1, 1
    return n_train, n_val, n_test


def make_split(samples: list[Sample], cfg: SplitConfig, seed: int) -> dict[str, list[str]]:
    """The split of ``samples`` that ``cfg`` describes (explicit names win).

    ``cfg.seed``, when set, seeds the split instead of ``seed`` (the config's seed).
    """
    seed = seed if cfg.seed is None else cfg.seed
    if cfg.names is not None:
        return explicit_split([s.name for s in samples], cfg.names)
    units = group_units(samples, cfg)
    if len(units) < 3:
        raise SeglabError(
            f"data.split.group_by {cfg.group_by!r} leaves {len(units)} group(s); "
            "train, val and test need at least 3",
            hint="use group_by: block with a smaller block_size, data.tile_size, or split.names",
        )
    keys = sorted(units)
    if cfg.stratify == "mask_density":
        assigned = _stratified(keys, units, cfg, seed)
    else:
        cut = split_names(keys, cfg, seed)
        assigned = {key: part for part in SPLITS for key in cut[part]}
    split = {
        part: sorted(s.name for k in keys if assigned[k] == part for s in units[k])
        for part in SPLITS
    }
    if cfg.group_by == "block":
        split = _drop_borders(samples, split)
    return split


def explicit_split(names: list[str], lists: dict[str, list[str]]) -> dict[str, list[str]]:
    known = set(names)
    seen: dict[str, str] = {}
    for part in SPLITS:
        for name in lists.get(part, []):
            if name not in known:
                raise SeglabError(
                    f"data.split.names.{part}: {name!r} is not a sample name",
                    hint=f"names look like {sorted(known)[:3]}",
                )
            if name in seen:
                raise SeglabError(f"data.split.names: {name!r} is in both {seen[name]} and {part}")
            seen[name] = part
    return {part: sorted(lists.get(part, [])) for part in SPLITS}


def group_units(samples: list[Sample], cfg: SplitConfig) -> dict[str, list[Sample]]:
    """Samples grouped into the units that are assigned to one split together."""
    units: dict[str, list[Sample]] = defaultdict(list)
    position: dict[str, int] = defaultdict(int)  # slice rank within its volume
    for s in sorted(samples, key=lambda s: (s.group, s.index, s.name)):
        if cfg.group_by == "volume":
            key = s.group
        elif cfg.group_by == "block":
            key = f"{s.group}#{position[s.group] // cfg.block_size:06d}"
            position[s.group] += 1
        else:
            key = s.name
        units[key].append(s)
    return dict(units)


def _stratified(
    keys: list[str], units: dict[str, list[Sample]], cfg: SplitConfig, seed: int
) -> dict[str, str]:
    """Bin units by foreground fraction (quantiles), then cut each bin by the ratios."""
    density = np.array([np.mean([s.foreground_fraction for s in units[k]]) for k in keys])
    edges = np.quantile(density, np.linspace(0, 1, cfg.density_bins + 1)[1:-1])
    bins = np.searchsorted(edges, density, side="right")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(keys))
    # deal units bin by bin, in a seeded order; the running totals follow the ratios
    assigned: dict[str, str] = {}
    target = np.array([cfg.train, cfg.val, cfg.test])
    taken = np.zeros(3)
    for b in np.unique(bins):
        for i in order[bins[order] == b]:
            deficit = target * (taken.sum() + 1) - taken
            part = int(np.argmax(deficit))
            taken[part] += 1
            assigned[keys[i]] = SPLITS[part]
    for part in SPLITS:  # every split needs at least one unit
        if part not in assigned.values():
            donor = max(SPLITS, key=lambda p: sum(v == p for v in assigned.values()))
            key = next(k for k in reversed(keys) if assigned[k] == donor)
            assigned[key] = part
    return assigned


def _drop_borders(samples: list[Sample], split: dict[str, list[str]]) -> dict[str, list[str]]:
    """Leave out each slice whose previous slice (same volume) lies in another split."""
    part_of = {n: p for p in SPLITS for n in split[p]}
    ordered = sorted(samples, key=lambda s: (s.group, s.index, s.name))
    excluded = set()
    for prev, cur in zip(ordered[:-1], ordered[1:], strict=True):
        if prev.group == cur.group and part_of[prev.name] != part_of[cur.name]:
            excluded.add(cur.name)
    out = {p: [n for n in split[p] if n not in excluded] for p in SPLITS}
    if not all(out.values()):
        return split  # too few slices to leave gaps: keep them (blocks still contiguous)
    out["excluded"] = sorted(excluded)
    return out
