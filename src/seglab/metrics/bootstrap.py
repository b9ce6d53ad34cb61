"""Bootstrap confidence intervals over images for the aggregate metrics.

The test images are resampled with replacement; each resample gets the
dataset-level scores (pixels pooled) and the mean-per-image scores, computed
exactly as :func:`seglab.metrics.summarize` computes them. The interval is the
percentile interval of those resampled scores.
"""

from __future__ import annotations

import numpy as np
import torch

from seglab.metrics import METRICS, scores


def bootstrap_ci(
    counts: torch.Tensor, n_samples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, dict[str, list[float]]]:
    """``{"dataset": {metric: [lo, hi]}, "per_image_mean": {...}}`` from (N, K, 4) counts."""
    n = counts.shape[0]
    rng = np.random.default_rng(seed)
    # how often each image is drawn in each resample: (B, N)
    draws = torch.from_numpy(rng.multinomial(n, np.full(n, 1.0 / n), size=n_samples)).double()
    pooled = scores(torch.einsum("bn,nkc->bkc", draws, counts.double()))  # (B, K)
    per_image = scores(counts)  # (N, K)
    tail = (1.0 - confidence) / 2 * 100
    result: dict[str, dict[str, list[float]]] = {"dataset": {}, "per_image_mean": {}}
    for name in METRICS:
        dataset_level = _nanmean(pooled[name], dim=1)  # (B,)
        image_scores = _nanmean(per_image[name], dim=1)  # (N,)
        finite = ~torch.isnan(image_scores)
        weights = draws * finite  # drawn images that have a score
        values = torch.nan_to_num(image_scores)
        mean_of_images = (weights @ values) / weights.sum(1)  # (B,), NaN if none drawn
        result["dataset"][name] = _interval(dataset_level, tail)
        result["per_image_mean"][name] = _interval(mean_of_images, tail)
    return result


def _nanmean(values: torch.Tensor, dim: int) -> torch.Tensor:
    finite = ~torch.isnan(values)
    total = torch.nan_to_num(values).sum(dim)
    count = finite.sum(dim)
    return torch.where(count > 0, total / count.clamp(min=1), torch.nan)


def _interval(values: torch.Tensor, tail: float) -> list[float]:
    array = values.numpy()
    if np.isnan(array).all():
        return [float("nan"), float("nan")]
    lo, hi = np.nanpercentile(array, [tail, 100 - tail])
    return [float(lo), float(hi)]


def paired_bootstrap(
    counts_a: torch.Tensor,
    counts_b: torch.Tensor,
    metric: str = "iou",
    n_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float | int | bool | list[float]]:
    """Dataset-level ``metric`` of A minus that of B, with a paired percentile interval.

    ``counts_a`` and ``counts_b`` are (N, K, 4) counts of the same N images in the
    same order. Each resample draws images with replacement and uses the same draw
    for both runs, so the interval reflects the difference on shared images.
    """
    if counts_a.shape != counts_b.shape:
        raise ValueError(f"counts differ in shape: {tuple(counts_a.shape)}, {counts_b.shape}")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    n = counts_a.shape[0]
    rng = np.random.default_rng(seed)
    draws = torch.from_numpy(rng.multinomial(n, np.full(n, 1.0 / n), size=n_samples)).double()

    def resampled(counts: torch.Tensor) -> torch.Tensor:  # (B,)
        pooled = torch.einsum("bn,nkc->bkc", draws, counts.double())
        return _nanmean(scores(pooled)[metric], dim=1)

    def observed(counts: torch.Tensor) -> float:
        return float(_nanmean(scores(counts.double().sum(0))[metric], dim=0))

    differences = resampled(counts_a) - resampled(counts_b)
    lo, hi = _interval(differences, (1.0 - confidence) / 2 * 100)
    return {
        "metric": metric,
        "a": observed(counts_a),
        "b": observed(counts_b),
        "difference": observed(counts_a) - observed(counts_b),
        "ci": [lo, hi],
        "excludes_zero": bool(lo > 0 or hi < 0),
        "n_images": n,
        "samples": n_samples,
        "confidence": confidence,
    }
