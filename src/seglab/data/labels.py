"""Labels: from a mask as stored (grey, 16-bit, 1-bit, JPEG, colour) to a class map.

With ``mask_mode: index`` the stored values are the classes. Otherwise binary
masks are thresholded at ``mask_threshold`` on a 0-255 scale, scaled to
the mask's bit depth; masks holding only 0 and 1 are taken as they are.
``class_values`` maps grey values and ``palette`` maps colours to classes; a
value or colour they do not list becomes ``ignore_index`` (and `check-data`
reports it). ``background_as_ignore`` turns class 0 into ``ignore_index`` and
shifts the other classes down by one.
"""

from __future__ import annotations

import numpy as np

from seglab.config import DataConfig


def value_range(array: np.ndarray) -> int:
    """The largest value the mask's storage type can hold (1 for 1-bit masks)."""
    if array.dtype == bool:
        return 1
    if np.issubdtype(array.dtype, np.integer):
        return int(np.iinfo(array.dtype).max)
    return 1 if array.size and float(array.max()) <= 1.0 else 255


def to_grey(array: np.ndarray) -> np.ndarray:
    """A colour mask as one channel (the maximum over channels)."""
    return array.max(axis=2) if array.ndim == 3 else array


def binary_labels(array: np.ndarray, threshold: int) -> np.ndarray:
    grey = to_grey(array)
    if grey.dtype == bool:
        return grey.astype(np.int64)
    if grey.size and grey.min() >= 0 and grey.max() <= 1:
        return grey.astype(np.int64)
    cut = threshold / 255.0 * value_range(grey)
    return (grey > cut).astype(np.int64)


def mapped_labels(array: np.ndarray, table: dict[int, int], ignore_index: int) -> np.ndarray:
    grey = to_grey(array).astype(np.int64)
    out = np.full(grey.shape, ignore_index, dtype=np.int64)
    for value, cls in table.items():
        out[grey == value] = cls
    return out


def palette_labels(array: np.ndarray, palette: list[list[int]], ignore_index: int) -> np.ndarray:
    rgb = array if array.ndim == 3 else np.repeat(array[..., None], 3, axis=2)
    out = np.full(rgb.shape[:2], ignore_index, dtype=np.int64)
    for cls, colour in enumerate(palette):
        out[np.all(rgb[..., :3] == np.asarray(colour, dtype=rgb.dtype), axis=2)] = cls
    return out


def to_class_map(array: np.ndarray, cfg: DataConfig) -> np.ndarray:
    """The int64 class map (H x W) of a mask array as read from disk."""
    if cfg.palette is not None:
        labels = palette_labels(array, cfg.palette, cfg.ignore_index)
    elif cfg.class_values is not None:
        labels = mapped_labels(array, cfg.class_values, cfg.ignore_index)
    elif cfg.mask_mode == "index":
        labels = to_grey(array).astype(np.int64)
    else:
        labels = binary_labels(array, cfg.mask_threshold)
    if cfg.background_as_ignore:
        keep = labels != cfg.ignore_index
        labels = np.where(keep, labels - 1, labels)
        labels[keep & (labels < 0)] = cfg.ignore_index
    return labels
