"""Torch datasets: seeded random training patches and whole images for evaluation."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from seglab.data.normalize import normalize
from seglab.data.samples import Sample


class PatchDataset(Dataset):
    """``n_patches`` random patches per epoch, fixed by (seed, epoch, index).

    The patch schedule depends only on the seed and the epoch, so a resumed
    run sees exactly the patches the uninterrupted run would have seen.
    """

    def __init__(
        self,
        samples: list[Sample],
        stats: dict[str, list[float]],
        patch_size: int,
        n_patches: int,
        seed: int,
        augment: bool = True,
    ) -> None:
        self.images = [normalize(s.image, stats) for s in samples]
        self.masks = [s.mask for s in samples]
        self.patch_size = patch_size
        self.n_patches = n_patches
        self.seed = seed
        self.augment = augment
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n_patches

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        k = int(rng.integers(len(self.images)))
        image, mask = crop(self.images[k], self.masks[k], self.patch_size, rng)
        if self.augment:
            image, mask = dihedral(image, mask, int(rng.integers(8)))
        return torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(
            np.ascontiguousarray(mask)
        )


def crop(
    image: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A random ``size`` x ``size`` window; images smaller than that are padded."""
    height, width = mask.shape
    pad_h, pad_w = max(0, size - height), max(0, size - width)
    if pad_h or pad_w:
        image = np.pad(image, ((0, 0), (0, pad_h), (0, pad_w)), mode="reflect")
        mask = np.pad(mask, ((0, pad_h), (0, pad_w)), mode="reflect")
        height, width = mask.shape
    top = int(rng.integers(height - size + 1))
    left = int(rng.integers(width - size + 1))
    return image[:, top : top + size, left : left + size], mask[
        top : top + size, left : left + size
    ]


def dihedral(image: np.ndarray, mask: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One of the 8 flips/rotations of the square, chosen by ``k``."""
    if k >= 4:
        image, mask = image[:, :, ::-1], mask[:, ::-1]
    return np.rot90(image, k % 4, axes=(1, 2)), np.rot90(mask, k % 4)


class ImageDataset(Dataset):
    """Whole normalised images with their masks, for validation and testing."""

    def __init__(self, samples: list[Sample], stats: dict[str, list[float]]) -> None:
        self.samples = samples
        self.stats = stats

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.samples[index]
        return torch.from_numpy(normalize(s.image, self.stats)), torch.from_numpy(s.mask)
