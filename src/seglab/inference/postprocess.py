"""Post-processing of class maps: opening, hole filling, small-object removal.

Each step works on one foreground class at a time (binary: the foreground) and
runs in the order: opening, fill holes, remove small objects. Pixels that a step
takes away become background (0); filled holes take only background pixels.
"""

from __future__ import annotations

from collections.abc import Callable

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
