"""One labelled image in memory."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Sample:
    """An image (float32, C x H x W) and its class map (int64, H x W).

    Images read from files are scaled to [0, 1] by their bit depth; cubes keep
    their raw values (normalisation takes care of the scale). ``group`` and
    ``index`` place a slice in its volume (the stack or file-name prefix and the
    slice number), so splits can keep neighbouring slices together.
    """

    name: str
    image: np.ndarray
    mask: np.ndarray
    group: str = ""
    index: int = 0

    @property
    def channels(self) -> int:
        return int(self.image.shape[0])

    @property
    def foreground_fraction(self) -> float:
        return float((self.mask > 0).mean())
