"""Bootstrap intervals: they cover the point estimate and narrow with more images."""

from __future__ import annotations

import math

import numpy as np
import torch

from seglab.metrics import confusion_counts, summarize
from seglab.metrics.bootstrap import bootstrap_ci


def noisy_counts(n_images: int, seed: int) -> torch.Tensor:
    """Per-image binary counts of predictions that are right with varying quality."""
    rng = np.random.default_rng(seed)
    truth = torch.from_numpy(rng.random((n_images, 24, 24)) < 0.3).long()
    flip_rate = torch.from_numpy(rng.uniform(0.0, 0.3, (n_images, 1, 1)))
    flips = torch.from_numpy(rng.random((n_images, 24, 24))) < flip_rate
    pred = torch.where(flips, 1 - truth, truth)
    return confusion_counts(pred, truth, 1)


def test_interval_covers_the_point_estimate_and_narrows():
    widths = {}
    for n in (8, 200):
        counts = noisy_counts(n, seed=n)
        point = summarize(counts)
        ci = bootstrap_ci(counts, n_samples=500, seed=0)
        for level in ("dataset", "per_image_mean"):
            for metric, (lo, hi) in ci[level].items():
                assert lo <= point[level][metric] <= hi, (n, level, metric)
        widths[n] = ci["dataset"]["iou"][1] - ci["dataset"]["iou"][0]
    assert 0 < widths[200] < widths[8] / 2


def test_seeded_and_tolerant_of_images_without_a_score():
    counts = noisy_counts(6, seed=1)
    assert bootstrap_ci(counts, 200, seed=3) == bootstrap_ci(counts, 200, seed=3)
    empty = torch.zeros(1, 1, 4, dtype=torch.long)
    empty[0, 0, 3] = 100  # an image with nothing to find: IoU is NaN there
    ci = bootstrap_ci(torch.cat([counts, empty]), 200, seed=0)
    assert all(math.isfinite(v) for v in ci["per_image_mean"]["iou"])
