"""Confusion counts per image and class, and the scores computed from them.

Counts are kept per image and per class as ``[tp, fp, fn, tn]`` so that both
dataset-level scores (pixels pooled over all images) and mean-per-image scores
come from the same numbers. For binary tasks the one class is the foreground.
"""

from __future__ import annotations

import torch

METRICS = ("iou", "dice", "precision", "recall", "accuracy")


def confusion_counts(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = None
) -> torch.Tensor:
    """Per-image, per-class ``[tp, fp, fn, tn]`` counts, shape (N, K, 4).

    ``pred`` and ``target`` are (N, H, W) class maps. ``num_classes == 1`` means
    binary (K = 1, the foreground); otherwise K = ``num_classes``.
    """
    pred, target = pred.long(), target.long()
    valid = torch.ones_like(target, dtype=torch.bool)
    if ignore_index is not None:
        valid = target != ignore_index
    classes = [1] if num_classes == 1 else list(range(num_classes))
    counts = []
    for c in classes:
        p, t = (pred == c) & valid, (target == c) & valid
        tp = (p & t).flatten(1).sum(1)
        fp = (p & ~t).flatten(1).sum(1)
        fn = (~p & t).flatten(1).sum(1)
        tn = valid.flatten(1).sum(1) - tp - fp - fn
        counts.append(torch.stack([tp, fp, fn, tn], dim=-1))
    return torch.stack(counts, dim=1)


def scores(counts: torch.Tensor) -> dict[str, torch.Tensor]:
    """IoU, Dice, precision, recall and accuracy from ``[..., 4]`` counts.

    A ratio whose denominator is zero (e.g. IoU of a class absent from both
    truth and prediction) is NaN, so it drops out of means instead of counting
    as perfect or as zero.
    """
    tp, fp, fn, tn = counts.double().unbind(-1)
    nan = torch.tensor(float("nan"), dtype=torch.float64)

    def ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        return torch.where(den > 0, num / den.clamp(min=1), nan)

    return {
        "iou": ratio(tp, tp + fp + fn),
        "dice": ratio(2 * tp, 2 * tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "accuracy": ratio(tp + tn, tp + fp + fn + tn),
    }


def summarize(counts: torch.Tensor) -> dict[str, dict[str, float]]:
    """Dataset-level and mean-per-image scores (class-averaged) from (N, K, 4) counts."""
    pooled = scores(counts.sum(0))  # (K,)
    per_image = scores(counts)  # (N, K)
    return {
        "dataset": {k: _nanmean(v) for k, v in pooled.items()},
        # class-average each image first (as per_image.csv does), then average the images
        "per_image_mean": {k: _nanmean(v.nanmean(dim=1)) for k, v in per_image.items()},
    }


def per_image_scores(counts: torch.Tensor) -> list[dict[str, float]]:
    """Class-averaged scores of each image, from (N, K, 4) counts."""
    per_image = scores(counts)
    return [{k: _nanmean(v[i]) for k, v in per_image.items()} for i in range(counts.shape[0])]


def _nanmean(values: torch.Tensor) -> float:
    finite = values[~torch.isnan(values)]
    return float(finite.mean()) if finite.numel() else float("nan")


def per_class_scores(counts: torch.Tensor) -> dict[str, list[float]]:
    """Dataset-level scores of each class (pixels pooled over images), from (N, K, 4) counts."""
    pooled = scores(counts.sum(0))
    return {k: [float(x) for x in v] for k, v in pooled.items()}


def prediction_is_constant(counts: torch.Tensor) -> bool:
    """Whether one class was predicted for every counted pixel (e.g. all background).

    Binary (K = 1): no foreground predicted, or nothing else. Multi-class: at
    most one class has any predicted pixel.
    """
    pooled = counts.sum(0).double()  # (K, 4)
    predicted = pooled[:, 0] + pooled[:, 1]  # tp + fp per class
    total = pooled[0].sum()
    if total == 0:
        return False
    if pooled.shape[0] == 1:
        return bool(predicted[0] == 0 or predicted[0] == total)
    return int((predicted > 0).sum()) <= 1
