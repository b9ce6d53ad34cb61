"""Evaluate a model (or an ensemble) on labelled samples: metrics, per-image scores, CIs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from seglab.data.samples import Sample
from seglab.inference.postprocess import postprocess
from seglab.inference.predict import Predictor, ProbabilityModel, labels_from_probabilities
from seglab.inference.settings import InferenceSettings
from seglab.metrics import confusion_counts, per_image_scores, summarize
from seglab.metrics.bootstrap import bootstrap_ci

COUNT_NAMES = ("tp", "fp", "fn", "tn")


@dataclass
class Evaluation:
    metrics: dict[str, Any]
    per_image: list[dict[str, Any]]
    predictions: dict[str, np.ndarray] = field(repr=False, default_factory=dict)


def evaluate_samples(
    model: nn.Module | ProbabilityModel,
    samples: list[Sample],
    normalization: dict[str, list[float]] | None = None,
    num_classes: int = 1,
    threshold: float = 0.5,
    ignore_index: int | None = None,
    split: str = "test",
    device: torch.device | str = "cpu",
    *,
    settings: InferenceSettings | None = None,
    bootstrap_samples: int = 0,
    seed: int = 0,
    probabilities: Sequence[torch.Tensor] | None = None,
) -> Evaluation:
    """Predict every sample, post-process, then score dataset-level and per image.

    ``model`` is a plain network (then ``normalization`` is needed) or anything
    with ``probabilities()`` (a :class:`Predictor`, an ensemble). With
    ``bootstrap_samples`` > 0 the metrics get 95% bootstrap intervals over images.
    ``probabilities``, where the caller has them already (:func:`predict_samples` of the
    same model and samples), are scored instead of predicting the samples again.
    """
    settings = (settings or InferenceSettings()).with_(threshold=threshold)
    if isinstance(model, nn.Module):
        if normalization is None:
            raise ValueError("a plain model needs its normalization")
        model = Predictor(model, normalization, settings, device, num_classes)
    if probabilities is not None and len(probabilities) != len(samples):
        raise ValueError(f"{len(probabilities)} probability maps for {len(samples)} samples")
    counts, predictions = [], {}
    for i, s in enumerate(samples):
        probs = (model.probabilities(s.image) if probabilities is None else probabilities[i])[0]
        pred = postprocess(labels_from_probabilities(probs, threshold), settings)
        predictions[s.name] = pred
        counts.append(
            confusion_counts(
                torch.from_numpy(pred)[None],
                torch.from_numpy(s.mask)[None],
                num_classes,
                ignore_index,
            )
        )
    stacked = torch.cat(counts)
    per_image = [
        {"name": s.name, **scores, **count_columns(c)}
        for s, scores, c in zip(samples, per_image_scores(stacked), stacked, strict=True)
    ]
    metrics: dict[str, Any] = {
        "split": split,
        "n_images": len(samples),
        "threshold": threshold,
        "tta": settings.tta,
        "window": settings.window,
        "postprocessing": settings.postprocessing(),
        **summarize(stacked),
    }
    if bootstrap_samples > 0 and len(samples) > 1:
        metrics["ci95"] = bootstrap_ci(stacked, bootstrap_samples, 0.95, seed)
        metrics["ci95"]["samples"] = bootstrap_samples
    if num_classes > 1:
        matrix = confusion_matrix(samples, predictions, num_classes, ignore_index)
        metrics["confusion_matrix"] = matrix
    return Evaluation(metrics, per_image, predictions)


def count_columns(counts: torch.Tensor) -> dict[str, int]:
    """One image's (K, 4) confusion counts as per_image.csv columns: tp, fp, fn, tn (binary)
    or tp_0, fp_0, ... per class, so that reports can pool pixels over any subset of images."""
    suffixes = [""] if counts.shape[0] == 1 else [f"_{k}" for k in range(counts.shape[0])]
    return {
        f"{name}{suffix}": int(value)
        for suffix, row in zip(suffixes, counts.tolist(), strict=True)
        for name, value in zip(COUNT_NAMES, row, strict=True)
    }


def predict_samples(model: ProbabilityModel, samples: list[Sample]) -> list[torch.Tensor]:
    """Each sample's probabilities (1, K, H, W) as the model gives them, moved to the CPU:
    predicted once, to be scored more than one way (``evaluate_samples(probabilities=)``)."""
    return [model.probabilities(s.image).cpu() for s in samples]


def foreground_probabilities(model: ProbabilityModel, samples: list[Sample]) -> list[np.ndarray]:
    """Foreground probability maps (float32, H x W) of binary-model predictions."""
    return foreground_maps(model.probabilities(s.image) for s in samples)


def foreground_maps(probabilities: Iterable[torch.Tensor]) -> list[np.ndarray]:
    """The foreground maps (float32, H x W) of binary-model probabilities (1, 1, H, W)."""
    return [p[0, 0].float().cpu().numpy() for p in probabilities]


def confusion_matrix(
    samples: list[Sample],
    predictions: dict[str, np.ndarray],
    num_classes: int,
    ignore_index: int | None,
) -> dict[str, Any]:
    """Pixel counts, rows = true class, columns = predicted class (ignored pixels left out)."""
    total = np.zeros(num_classes * num_classes, dtype=np.int64)
    for s in samples:
        truth, pred = s.mask.ravel(), predictions[s.name].ravel()
        valid = (truth >= 0) & (truth < num_classes)
        if ignore_index is not None:
            valid &= truth != ignore_index
        total += np.bincount(truth[valid] * num_classes + pred[valid], minlength=total.size)
    return {
        "rows": "true class",
        "columns": "predicted class",
        "counts": total.reshape(num_classes, num_classes).tolist(),
    }
