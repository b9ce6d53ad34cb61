"""Per-channel z-score normalisation with statistics from the training split."""

from __future__ import annotations

import numpy as np

from seglab.data.samples import Sample


def fit_normalization(samples: list[Sample]) -> dict[str, list[float]]:
    """Per-channel mean and standard deviation over all pixels of ``samples``."""
    channels = samples[0].channels
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    count = 0
    for s in samples:
        flat = s.image.reshape(channels, -1).astype(np.float64)
        total += flat.sum(axis=1)
        total_sq += (flat**2).sum(axis=1)
        count += flat.shape[1]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return {"mean": mean.tolist(), "std": np.maximum(std, 1e-6).tolist()}


def normalize(image: np.ndarray, stats: dict[str, list[float]]) -> np.ndarray:
    mean = np.asarray(stats["mean"], dtype=np.float32)[:, None, None]
    std = np.asarray(stats["std"], dtype=np.float32)[:, None, None]
    return (image - mean) / std
