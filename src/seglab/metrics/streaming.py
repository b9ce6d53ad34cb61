"""``SegMetrics``: a torchmetrics Metric that accumulates confusion counts over batches."""

from __future__ import annotations

import torch
from torchmetrics import Metric

from seglab.metrics.counts import (
    METRICS,
    confusion_counts,
    per_class_scores,
    prediction_is_constant,
    summarize,
)


class SegMetrics(Metric):
    """Per-image, per-class counts of class maps; ``compute()`` gives a flat dict of scores.

    Keys: ``iou``, ``dice``, ``precision``, ``recall``, ``accuracy`` (dataset-level,
    class-averaged), ``image_iou``... (mean per image), ``iou_c<k>``... (dataset-level
    per class, multi-class only), and ``constant_prediction`` (1.0 when a single
    class was predicted everywhere).
    """

    full_state_update = False

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.add_state("counts", default=[], dist_reduce_fx="cat")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self.counts.append(confusion_counts(pred, target, self.num_classes, self.ignore_index))

    def compute(self) -> dict[str, float]:
        counts = self.counts
        if isinstance(counts, list):
            if not counts:
                return {}
            counts = torch.cat(counts)
        summary = summarize(counts)
        out = dict(summary["dataset"])
        out.update({f"image_{k}": v for k, v in summary["per_image_mean"].items()})
        if self.num_classes > 1:
            for name, values in per_class_scores(counts).items():
                if name in METRICS:
                    out.update({f"{name}_c{k}": v for k, v in enumerate(values)})
        out["constant_prediction"] = float(prediction_is_constant(counts))
        return out
