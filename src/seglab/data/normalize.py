"""Normalisation fitted on the training split: z-score, min-max, percentile or none.

The fitted statistics are a small JSON-able dict (``method``, ``per_channel``
and the numbers); it is stored in the run's ``model/model.json`` so prediction
normalises exactly as training did. A dict without ``method`` (older runs) is
a z-score.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from seglab.config import NormalizeConfig
from seglab.data.samples import Sample

_MAX_PIXELS = 2_000_000  # percentiles are taken on a seeded subsample this large
Fitter = Callable[[list[np.ndarray], NormalizeConfig], dict]
_FITTERS: dict[str, Fitter] = {}


def _register(name: str) -> Callable[[Fitter], Fitter]:
    def decorator(fn: Fitter) -> Fitter:
        _FITTERS[name] = fn
        return fn

    return decorator


def fit_normalization(samples: list[Sample], cfg: NormalizeConfig | None = None) -> dict:
    """Statistics of ``samples`` (the training split) for ``cfg.method``."""
    cfg = cfg or NormalizeConfig()
    channels = samples[0].channels
    flats = [s.image.reshape(channels, -1) for s in samples]
    if not cfg.per_channel:
        flats = [f.reshape(1, -1) for f in flats]
    stats = _FITTERS[cfg.method](flats, cfg)
    return {"method": cfg.method, "per_channel": cfg.per_channel, **stats}


@_register("zscore")
def _zscore(flats: list[np.ndarray], cfg: NormalizeConfig) -> dict:
    channels = flats[0].shape[0]
    total, total_sq, count = np.zeros(channels), np.zeros(channels), 0
    for flat in flats:
        f = flat.astype(np.float64)
        total += f.sum(axis=1)
        total_sq += (f**2).sum(axis=1)
        count += f.shape[1]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return {"mean": mean.tolist(), "std": np.maximum(std, 1e-6).tolist()}


@_register("minmax")
def _minmax(flats: list[np.ndarray], cfg: NormalizeConfig) -> dict:
    low = np.min([f.min(axis=1) for f in flats], axis=0).astype(np.float64)
    high = np.max([f.max(axis=1) for f in flats], axis=0).astype(np.float64)
    return {"low": low.tolist(), "high": np.maximum(high, low + 1e-6).tolist()}


@_register("percentile")
def _percentile(flats: list[np.ndarray], cfg: NormalizeConfig) -> dict:
    pixels = np.concatenate(flats, axis=1)
    if pixels.shape[1] > _MAX_PIXELS:
        keep = np.random.default_rng(0).choice(pixels.shape[1], _MAX_PIXELS, replace=False)
        pixels = pixels[:, keep]
    low = np.percentile(pixels, cfg.low_percentile, axis=1).astype(np.float64)
    high = np.percentile(pixels, cfg.high_percentile, axis=1).astype(np.float64)
    return {"low": low.tolist(), "high": np.maximum(high, low + 1e-6).tolist(), "clip": True}


@_register("none")
def _none(flats: list[np.ndarray], cfg: NormalizeConfig) -> dict:
    return {}


def normalize(image: np.ndarray, stats: dict) -> np.ndarray:
    """``image`` (C x H x W) normalised with fitted ``stats``, as float32."""
    method = stats.get("method", "zscore")
    if method == "none":
        return image.astype(np.float32, copy=False)
    if method == "zscore":
        shift, scale = _column(stats["mean"]), _column(stats["std"])
    else:
        shift = _column(stats["low"])
        scale = _column(stats["high"]) - shift
    out = (image - shift) / scale
    if stats.get("clip"):
        np.clip(out, 0.0, 1.0, out=out)
    return out.astype(np.float32, copy=False)


def _column(values: list[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)[:, None, None]
