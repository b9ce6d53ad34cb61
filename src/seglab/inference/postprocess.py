"""Post-processing of class maps: opening, hole filling, small-object removal.

Each step works on one foreground class at a time (binary: the foreground) and
runs in the order: opening, fill holes, remove small objects. Pixels that a step
takes away become background (0); filled holes take only background pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from scipy import ndimage

from seglab.inference.settings import InferenceSettings

Step = Callable[[np.ndarray, InferenceSettings], np.ndarray]
_STEPS: dict[str, Step] = {}


def register_step(name: str) -> Callable[[Step], Step]:
    def decorator(step: Step) -> Step:
        _STEPS[name] = step
        return step

    return decorator


def disk(radius: int) -> np.ndarray:
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return x**2 + y**2 <= radius**2


@register_step("opening")
def opening(mask: np.ndarray, settings: InferenceSettings) -> np.ndarray:
    if settings.opening <= 0:
        return mask
    return ndimage.binary_opening(mask, structure=disk(settings.opening))


@register_step("fill_holes")
def fill_holes(mask: np.ndarray, settings: InferenceSettings) -> np.ndarray:
    return ndimage.binary_fill_holes(mask) if settings.fill_holes else mask


@register_step("min_object_size")
def remove_small_objects(mask: np.ndarray, settings: InferenceSettings) -> np.ndarray:
    if settings.min_object_size <= 1 or not mask.any():
        return mask
    labels, count = ndimage.label(mask)  # 4-connected objects
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes >= settings.min_object_size
    keep[0] = False
    return keep[labels]


def is_active(settings: InferenceSettings) -> bool:
    return settings.opening > 0 or settings.fill_holes or settings.min_object_size > 1


def postprocess(labels: np.ndarray, settings: InferenceSettings) -> np.ndarray:
    """The class map (H, W) after the configured steps; unchanged when none is on."""
    if not is_active(settings):
        return labels
    out = labels.copy()
    for c in np.unique(labels):
        if c == 0:
            continue
        mask = labels == c
        for step in _STEPS.values():
            mask = step(mask, settings)
        out[(labels == c) & ~mask] = 0
        out[mask & (out == 0)] = c
    return out


MIN_OBJECT_SIZES = (0, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)  # pixels
OPENINGS = (0, 1, 2)  # disk radii

SettingsKey = tuple[int, bool, int]  # (opening radius, fill holes, min object size)
NO_POSTPROCESSING: SettingsKey = (0, False, 0)


def settings_key(settings: Mapping[str, int | bool]) -> SettingsKey:
    """The key of :func:`tune_postprocessing`'s table for settings it chose."""
    return (
        int(settings["opening"]),
        bool(settings["fill_holes"]),
        int(settings["min_object_size"]),
    )


def tune_postprocessing(
    probabilities: list[np.ndarray],
    masks: list[np.ndarray],
    threshold: float,
    ignore_index: int | None = None,
    min_object_sizes: tuple[int, ...] = MIN_OBJECT_SIZES,
    openings: tuple[int, ...] = OPENINGS,
) -> tuple[dict[str, int | bool], dict[SettingsKey, float]]:
    """(best binary post-processing, IoU of every candidate) on a labelled split.

    Each candidate is an opening radius x hole filling off/on x a minimum object
    size, applied like :func:`postprocess` to the foreground probabilities (H, W)
    thresholded at ``threshold``; its score is the IoU pooled over all pixels of all
    images. No processing (0, False, 0) is always a candidate, and ties go to the
    least processing (smaller opening, then no filling, then smaller size).
    """
    radii = sorted({0, *openings})
    sizes = sorted({0, *min_object_sizes})
    totals = {(r, f, s): np.zeros(2, np.int64) for r in radii for f in (False, True) for s in sizes}
    truth_total = 0
    for prob, mask in zip(probabilities, masks, strict=True):
        valid = mask != ignore_index if ignore_index is not None else np.ones(mask.shape, bool)
        truth = (mask == 1) & valid
        truth_total += int(truth.sum())
        base = prob > threshold
        for r in radii:
            opened = ndimage.binary_opening(base, structure=disk(r)) if r > 0 else base
            for fill in (False, True):
                kept = ndimage.binary_fill_holes(opened) if fill else opened
                labels, count = ndimage.label(kept)  # 4-connected, as in postprocess
                flat = labels.ravel()
                area = np.bincount(flat, minlength=count + 1)
                tp = np.bincount(flat, weights=truth.ravel(), minlength=count + 1)
                fp = np.bincount(flat, weights=(valid & ~truth).ravel(), minlength=count + 1)
                for s in sizes:
                    keep = area >= s if s > 1 else np.ones(count + 1, bool)
                    keep[0] = False
                    totals[(r, fill, s)] += (int(tp[keep].sum()), int(fp[keep].sum()))
    table = {}
    for key, (tp, fp) in totals.items():
        denominator = truth_total + fp  # tp + fp + fn
        table[key] = float(tp / denominator) if denominator > 0 else float("nan")
    scored = [k for k in sorted(table) if not np.isnan(table[k])]
    best = NO_POSTPROCESSING
    if scored:
        top = max(table[k] for k in scored)
        best = next(k for k in scored if table[k] >= top - 1e-12)
    return {"opening": best[0], "fill_holes": best[1], "min_object_size": best[2]}, table
