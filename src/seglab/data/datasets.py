"""Torch datasets: seeded training patches (with foreground oversampling) and whole images.

Augmentation is not done here: it runs batched on the device
(:mod:`seglab.data.augment`), after the batch has been transferred.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from seglab.config import Config
from seglab.data.normalize import normalize
from seglab.data.samples import Sample

MAX_FOREGROUND_POINTS = 20_000  # per image: where foreground-centred patches may be centred


class PatchDataset(Dataset):
    """``n_patches`` random patches per epoch, fixed by (seed, epoch, index).

    A fraction ``foreground_oversample`` of the patches (exactly, spread evenly
    over the epoch) is centred on a random foreground pixel of a random image
    that has foreground; the rest are uniform random crops. The schedule depends
    only on the seed and the epoch, so a resumed run sees the same patches.
    Normalised images are computed once and kept in memory.
    """

    def __init__(
        self,
        samples: list[Sample],
        stats: dict,
        patch_size: int,
        n_patches: int,
        seed: int,
        augment: object = None,  # unused: augmentation runs on the device (seglab.data.augment)
        *,
        foreground_oversample: float = 0.0,
        ignore_index: int = 255,
    ) -> None:
        self.images = [normalize(s.image, stats) for s in samples]
        self.masks = [s.mask for s in samples]
        self.patch_size = patch_size
        self.n_patches = n_patches
        self.seed = seed
        self.foreground_oversample = foreground_oversample
        self.epoch = 0
        self.foreground = [_foreground_points(m, ignore_index, seed) for m in self.masks]
        self.with_foreground = [i for i, pts in enumerate(self.foreground) if len(pts)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n_patches

    def is_foreground_patch(self, index: int) -> bool:
        f = self.foreground_oversample
        return bool(self.with_foreground) and int((index + 1) * f) > int(index * f)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.is_foreground_patch(index):
            k = self.with_foreground[int(rng.integers(len(self.with_foreground)))]
            points = self.foreground[k]
            centre = points[int(rng.integers(len(points)))]
            image, mask = crop_at(self.images[k], self.masks[k], self.patch_size, centre)
        else:
            k = int(rng.integers(len(self.images)))
            image, mask = crop(self.images[k], self.masks[k], self.patch_size, rng)
        return torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(
            np.ascontiguousarray(mask)
        )


def _foreground_points(mask: np.ndarray, ignore_index: int, seed: int) -> np.ndarray:
    """(y, x) of up to MAX_FOREGROUND_POINTS foreground pixels, a seeded subsample."""
    flat = np.flatnonzero((mask > 0) & (mask != ignore_index))
    if len(flat) > MAX_FOREGROUND_POINTS:
        flat = np.random.default_rng(seed).choice(flat, MAX_FOREGROUND_POINTS, replace=False)
    return np.stack(np.unravel_index(flat, mask.shape), axis=1).astype(np.int32)


def _pad(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    height, width = mask.shape
    pad_h, pad_w = max(0, size - height), max(0, size - width)
    if pad_h or pad_w:
        mode = "reflect" if pad_h < height and pad_w < width else "edge"
        image = np.pad(image, ((0, 0), (0, pad_h), (0, pad_w)), mode=mode)
        mask = np.pad(mask, ((0, pad_h), (0, pad_w)), mode=mode)
    return image, mask


def crop(
    image: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A random ``size`` x ``size`` window; images smaller than that are padded."""
    image, mask = _pad(image, mask, size)
    height, width = mask.shape
    top = int(rng.integers(height - size + 1))
    left = int(rng.integers(width - size + 1))
    return image[:, top : top + size, left : left + size], mask[
        top : top + size, left : left + size
    ]


def crop_at(
    image: np.ndarray, mask: np.ndarray, size: int, centre: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The ``size`` window centred on ``centre`` (y, x), shifted to stay inside the image."""
    image, mask = _pad(image, mask, size)
    height, width = mask.shape
    top = int(np.clip(int(centre[0]) - size // 2, 0, height - size))
    left = int(np.clip(int(centre[1]) - size // 2, 0, width - size))
    return image[:, top : top + size, left : left + size], mask[
        top : top + size, left : left + size
    ]


class ImageDataset(Dataset):
    """Whole normalised images with their masks, for validation and testing."""

    def __init__(self, samples: list[Sample], stats: dict) -> None:
        self.samples = samples
        self.stats = stats

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.samples[index]
        return torch.from_numpy(normalize(s.image, self.stats)), torch.from_numpy(s.mask)


def train_dataset(cfg: Config, train: list[Sample], stats: dict) -> PatchDataset:
    """The training patch dataset that ``cfg.data`` describes."""
    d = cfg.data
    return PatchDataset(
        train,
        stats,
        d.patch_size,
        d.patches_per_epoch,
        cfg.seed,
        foreground_oversample=d.foreground_oversample,
        ignore_index=d.ignore_index,
    )
