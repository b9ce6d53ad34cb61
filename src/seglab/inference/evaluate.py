"""Evaluate a trained model on labelled samples: metrics and per-image scores."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from seglab.data.samples import Sample
from seglab.inference.predict import labels_from_probabilities, predict_probabilities
from seglab.metrics import confusion_counts, per_image_scores, summarize


@dataclass
class Evaluation:
    metrics: dict[str, Any]
    per_image: list[dict[str, Any]]
    predictions: dict[str, np.ndarray] = field(repr=False, default_factory=dict)


def evaluate_samples(
    model: nn.Module,
    samples: list[Sample],
    normalization: dict[str, list[float]],
    num_classes: int,
    threshold: float,
    ignore_index: int | None = None,
    split: str = "test",
    device: torch.device | str = "cpu",
) -> Evaluation:
    """Predict every sample, then score dataset-level and per image."""
    model = model.to(device).eval()
    counts, predictions = [], {}
    for s in samples:
        probs = predict_probabilities(model, s.image, normalization, device)
        pred = labels_from_probabilities(probs, threshold)
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
        {"name": s.name, **scores}
        for s, scores in zip(samples, per_image_scores(stacked), strict=True)
    ]
    metrics = {
        "split": split,
        "n_images": len(samples),
        "threshold": threshold,
        **summarize(stacked),
    }
    return Evaluation(metrics, per_image, predictions)
