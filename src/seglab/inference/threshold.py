"""The binary threshold that maximises the pooled IoU of a labelled split."""

from __future__ import annotations

import numpy as np

GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)


def tune_threshold(
    probabilities: list[np.ndarray],
    masks: list[np.ndarray],
    ignore_index: int | None = None,
    grid: np.ndarray = GRID,
) -> tuple[float, dict[float, float]]:
    """(best threshold, IoU at every grid threshold) over all pixels of all images.

    ``probabilities`` are foreground probabilities (H, W); a pixel is foreground
    when its probability is above the threshold. Ties go to the threshold
    closest to 0.5.
    """
    pos_parts, neg_parts = [], []
    for prob, mask in zip(probabilities, masks, strict=True):
        valid = mask != ignore_index if ignore_index is not None else np.ones(mask.shape, bool)
        pos_parts.append(prob[valid & (mask == 1)].ravel())
        neg_parts.append(prob[valid & (mask != 1)].ravel())
    pos = np.sort(np.concatenate(pos_parts).astype(np.float32))
    neg = np.sort(np.concatenate(neg_parts).astype(np.float32))
    thresholds = grid.astype(np.float32)
    tp = pos.size - np.searchsorted(pos, thresholds, side="right")  # p > t
    fp = neg.size - np.searchsorted(neg, thresholds, side="right")
    fn = pos.size - tp
    denominator = tp + fp + fn
    iou = np.where(denominator > 0, tp / np.maximum(denominator, 1), np.nan)
    table = {float(t): float(v) for t, v in zip(grid, iou, strict=True)}
    return best_grid_threshold(grid, iou), table


def best_grid_threshold(grid: np.ndarray, iou: np.ndarray) -> float:
    """The threshold of ``grid`` with the highest ``iou`` (NaN: undefined, skipped); ties
    go to the threshold closest to 0.5, and 0.5 is returned when every IoU is NaN."""
    grid, iou = np.asarray(grid), np.asarray(iou, dtype=np.float64)
    if np.isnan(iou).all():
        return 0.5
    best = np.nanmax(iou)
    candidates = grid[iou >= best - 1e-12]
    return float(candidates[np.argmin(np.abs(candidates - 0.5))])
