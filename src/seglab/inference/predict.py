"""Whole-image prediction with a trained model."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from seglab.data.normalize import normalize
from seglab.losses import probabilities


@torch.inference_mode()
def predict_probabilities(
    model: nn.Module,
    image: np.ndarray,
    normalization: dict[str, list[float]],
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Class probabilities (K x H x W, float32) for one image (C x H x W in [0, 1]).

    K = 1 (the foreground probability) for binary models.
    """
    x = torch.from_numpy(normalize(image, normalization)).unsqueeze(0).to(device)
    return probabilities(model(x))[0].float().cpu().numpy()


def labels_from_probabilities(probs: np.ndarray, threshold: float) -> np.ndarray:
    """Class map (int64, H x W): threshold the foreground, or take the argmax."""
    if probs.shape[0] == 1:
        return (probs[0] > threshold).astype(np.int64)
    return probs.argmax(axis=0).astype(np.int64)
