"""Train / validation / test splits, seeded."""

from __future__ import annotations

import numpy as np

from seglab.config import SplitConfig

SPLITS = ("train", "val", "test")


def split_names(names: list[str], ratios: SplitConfig, seed: int) -> dict[str, list[str]]:
    """Shuffle ``names`` with ``seed`` and cut them by ``ratios``; every split gets >= 1."""
    n = len(names)
    if n < 3:
        raise ValueError("need at least 3 names to split")
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(ratios.val * n))
    n_test = max(1, round(ratios.test * n))
    n_train = n - n_val - n_test
    if n_train < 1:
        n_train, n_val, n_test = n - 2, 1, 1
    shuffled = [names[i] for i in order]
    return {
        "train": sorted(shuffled[:n_train]),
        "val": sorted(shuffled[n_train : n_train + n_val]),
        "test": sorted(shuffled[n_train + n_val :]),
    }
