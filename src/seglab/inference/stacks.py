"""Stacks (volumes) predicted slice by slice, the windows of several slices batched together."""

from __future__ import annotations

import numpy as np

from seglab.inference.postprocess import postprocess
from seglab.inference.predict import ProbabilityModel, labels_from_probabilities
from seglab.inference.settings import InferenceSettings

SLICES_PER_PASS = 8  # slices whose windows share forward passes (bounds the memory used)


def predict_stack(
    model: ProbabilityModel,
    slices: np.ndarray,
    settings: InferenceSettings,
    keep_probabilities: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Post-processed class maps (Z, H, W) and optionally probabilities (Z, K, H, W, float32)
    of ``slices`` (Z, C, H, W in [0, 1]); a plain image is a stack of one slice."""
    labels, probs = [], []
    for start in range(0, slices.shape[0], SLICES_PER_PASS):
        p = model.probabilities(slices[start : start + SLICES_PER_PASS])
        maps = labels_from_probabilities(p, settings.threshold)
        labels += [postprocess(m, settings) for m in maps]
        if keep_probabilities:
            probs.append(p.float().cpu().numpy())
    return np.stack(labels), np.concatenate(probs) if keep_probabilities else None
