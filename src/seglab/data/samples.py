"""One labelled image in memory."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Sample:
    """An image (float32, C x H x W, values in [0, 1]) and its class map (int64, H x W)."""

    name: str
    image: np.ndarray
    mask: np.ndarray

    @property
    def channels(self) -> int:
        return int(self.image.shape[0])

    @property
    def foreground_fraction(self) -> float:
        return float((self.mask > 0).mean())
