"""Segmentation metrics: IoU, Dice, precision, recall, accuracy; per class and class-averaged.

Two averages, never to be confused:

- **dataset-level** (``dataset``, logged as ``val_iou``...): pixels of all
  images pooled into one confusion table per class, then the score.
- **mean per image** (``per_image_mean``, logged as ``val_image_iou``...):
  the score of each image, then the mean over images (images where a score
  is undefined, e.g. no object and none predicted, drop out).

Everything comes from per-image, per-class ``[tp, fp, fn, tn]`` counts
(:func:`confusion_counts`); :class:`SegMetrics` accumulates them as a
torchmetrics ``Metric`` so they are synchronised across DDP processes.
"""

from seglab.metrics.counts import (
    METRICS,
    confusion_counts,
    per_class_scores,
    per_image_scores,
    prediction_is_constant,
    scores,
    summarize,
)
from seglab.metrics.streaming import SegMetrics

__all__ = [
    "METRICS",
    "SegMetrics",
    "confusion_counts",
    "per_class_scores",
    "per_image_scores",
    "prediction_is_constant",
    "scores",
    "summarize",
]
