"""Sliding-window prediction with blended overlaps, batched and accumulated on the device.

An image larger than the window is covered by windows ``window * (1 - overlap)``
apart; the last window of a row or column is shifted back inside the image, so no
window reaches past a border and no padding is needed. Each window's
probabilities are weighted (Gaussian: high in the middle, low at the edges; or
constant) and summed; the sum is divided by the summed weights. A side no larger
than the window is predicted in one piece, so an image that fits in a window gets
exactly one plain forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Forward = Callable[[torch.Tensor], torch.Tensor]
WeightFactory = Callable[[tuple[int, int], float, torch.device], torch.Tensor]
_WEIGHTS: dict[str, WeightFactory] = {}
MIN_WEIGHT = 1e-3  # floor of the blending weights: every pixel keeps some weight


def register_blending(name: str) -> Callable[[WeightFactory], WeightFactory]:
    def decorator(factory: WeightFactory) -> WeightFactory:
        _WEIGHTS[name] = factory
        return factory

    return decorator


def available_blendings() -> list[str]:
    return sorted(_WEIGHTS)


@register_blending("gaussian")
def gaussian_weights(
    size: tuple[int, int], sigma_scale: float, device: torch.device
) -> torch.Tensor:
    """A separable Gaussian centred on the window, sigma = sigma_scale * side, peak 1."""
    axes = []
    for side in size:
        x = torch.arange(side, dtype=torch.float32, device=device) - (side - 1) / 2.0
        sigma = sigma_scale * side
        axes.append(torch.exp(-(x**2) / (2 * sigma**2)))
    weights = axes[0][:, None] * axes[1][None, :]
    return weights.clamp_(min=max(float(weights.min()), MIN_WEIGHT))


@register_blending("constant")
def constant_weights(
    size: tuple[int, int], sigma_scale: float, device: torch.device
) -> torch.Tensor:
    return torch.ones(size, dtype=torch.float32, device=device)


def window_starts(length: int, window: int, step: int) -> list[int]:
    """Start offsets along one side: ``step`` apart, the last one ending at the border."""
    if window >= length:
        return [0]
    count = math.ceil((length - window) / step) + 1
    return [min(i * step, length - window) for i in range(count)]


def sliding_window(
    forward: Forward,
    images: torch.Tensor,
    window: int | None,
    overlap: float = 0.5,
    blending: str = "gaussian",
    sigma_scale: float = 0.125,
    batch_windows: int = 4,
) -> torch.Tensor:
    """Blended probabilities (N, K, H, W, float32) of ``images`` (N, C, H, W).

    ``forward`` maps a batch of windows (B, C, h, w) to probabilities (B, K, h, w).
    Windows of all the images are batched together, ``batch_windows`` at a time.
    ``window=None`` predicts every image whole.
    """
    n, _, height, width = images.shape
    win_h = height if window is None else min(window, height)
    win_w = width if window is None else min(window, width)
    if (win_h, win_w) == (height, width):  # one window per image: a plain forward pass
        return torch.cat(
            [forward(images[i : i + batch_windows]).float() for i in range(0, n, batch_windows)]
        )
    if blending not in _WEIGHTS:
        raise ValueError(f"unknown blending {blending!r}; known: {available_blendings()}")
    weights = _WEIGHTS[blending]((win_h, win_w), sigma_scale, images.device)
    step_h = max(1, int(win_h * (1 - overlap))) if win_h < height else win_h
    step_w = max(1, int(win_w * (1 - overlap))) if win_w < width else win_w
    positions = [
        (y, x)
        for y in window_starts(height, win_h, step_h)
        for x in window_starts(width, win_w, step_w)
    ]
    weight_sum = torch.zeros((height, width), dtype=torch.float32, device=images.device)
    for y, x in positions:
        weight_sum[y : y + win_h, x : x + win_w] += weights
    jobs = [(i, y, x) for i in range(n) for y, x in positions]
    output: torch.Tensor | None = None
    for start in range(0, len(jobs), batch_windows):
        batch = jobs[start : start + batch_windows]
        crops = torch.stack([images[i, :, y : y + win_h, x : x + win_w] for i, y, x in batch])
        probs = forward(crops).float() * weights
        if output is None:
            output = images.new_zeros((n, probs.shape[1], height, width), dtype=torch.float32)
        for p, (i, y, x) in zip(probs, batch, strict=True):
            output[i, :, y : y + win_h, x : x + win_w] += p
    assert output is not None
    return output.div_(weight_sum)
