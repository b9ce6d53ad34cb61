"""Batched augmentation on the device: ``Augment(cfg, ignore_index)(images, masks)``.

Runs on whole training batches after they reach the device (GPU or CPU), with
kornia for the geometry (flips, 90-degree rotations, small rotations and
scaling, elastic deformation) and for blur and noise. Masks follow every
geometric transform with nearest-neighbour sampling, so class values and
``ignore_index`` survive; pixels that a rotation or scaling brings in from
outside the image become ``ignore_index``. Brightness, contrast and gamma are
written here because images arrive normalised (z-scores can be negative), so
each is expressed relative to the image's own mean, spread or range.

Each transform is switched by its config value (0 = off) and applied per image
with probability ``p``; flips and 90-degree rotations pick one of the allowed
mirror/rotation combinations per image uniformly.
"""

from __future__ import annotations

import math
import warnings

import kornia.augmentation as K
import torch
from torch import nn

from seglab.config import AugmentConfig

_GRID_NOTICE = ".*Default grid_sample and affine_grid behavior.*"  # kornia's, harmless


class Augment(nn.Module):
    """(images N x C x H x W float, masks N x H x W int64) -> both augmented."""

    def __init__(self, cfg: AugmentConfig, ignore_index: int = 255) -> None:
        super().__init__()
        self.cfg = cfg
        self.ignore_index = ignore_index
        geometric = _geometric(cfg)
        self.geometric = (
            K.AugmentationSequential(*geometric, data_keys=["input", "mask"]) if geometric else None
        )
        photometric: list[nn.Module] = []
        if cfg.blur_sigma > 0:
            radius = max(1, math.ceil(3 * cfg.blur_sigma))
            photometric.append(K.RandomGaussianBlur(2 * radius + 1, (0.1, cfg.blur_sigma), p=cfg.p))
        self.photometric = nn.Sequential(*photometric)

    @property
    def active(self) -> bool:
        c = self.cfg
        return c.enabled and (
            c.flip
            or c.rot90
            or self.geometric is not None
            or len(self.photometric) > 0
            or any((c.brightness, c.contrast, c.gamma, c.noise_std))
        )

    @torch.no_grad()
    def forward(
        self, images: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.active:
            return images, masks
        images, masks = self._dihedral(images, masks)
        if self.geometric is not None:
            shifted = (masks + 1).unsqueeze(1).to(images.dtype)  # 0 now means "from outside"
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_GRID_NOTICE)
                images, shifted = self.geometric(images, shifted)
            masks = shifted.squeeze(1).round().long() - 1
            masks[masks < 0] = self.ignore_index
        images = self._intensity(images)
        return images.contiguous(), masks.contiguous()

    def _dihedral(
        self, images: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random flips / 90-degree rotations, exact (index moves, no resampling).

        Done with torch rather than kornia: kornia's flip and rot90 go through a
        general warp, which costs ~50-100 ms per batch on a CPU.
        """
        codes = self.dihedral_codes(images.shape[-2] == images.shape[-1])
        if len(codes) == 1:
            return images, masks
        pick = torch.randint(len(codes), (images.shape[0],))
        images, masks = images.clone(), masks.clone()
        for j in pick.unique().tolist():
            code = codes[j]
            if code == 0:
                continue
            idx = (pick == j).nonzero().squeeze(1).to(images.device)
            im, mk = images[idx], masks[idx]
            if code >= 4:
                im, mk = im.flip(-1), mk.flip(-1)
            im, mk = im.rot90(code % 4, dims=(-2, -1)), mk.rot90(code % 4, dims=(-2, -1))
            images[idx], masks[idx] = im, mk
        return images, masks

    def dihedral_codes(self, square: bool) -> list[int]:
        """Codes k of the allowed transforms: rotate by 90 * (k % 4), mirrored first if k >= 4."""
        flip, rot = self.cfg.flip, self.cfg.rot90 and square
        if flip and rot:
            return list(range(8))
        if flip:
            return [0, 2, 4, 6]  # identity, both flips (= rot 180), horizontal, vertical
        return [0, 1, 2, 3] if rot else [0]

    def _intensity(self, x: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        if not any((c.brightness, c.contrast, c.gamma, c.noise_std)) and not len(self.photometric):
            return x
        n = x.shape[0]
        dims = tuple(range(1, x.ndim))
        mean = x.mean(dim=dims, keepdim=True)
        std = x.std(dim=dims, keepdim=True).clamp_min(1e-6)
        if c.contrast > 0:
            x = mean + (x - mean) * (1 + _chosen(n, c.p, x) * _uniform(n, c.contrast, x))
        if c.brightness > 0:
            x = x + _chosen(n, c.p, x) * _uniform(n, c.brightness, x) * std
        if c.gamma > 0:
            x = _gamma(x, _chosen(n, c.p, x) * _uniform(n, math.log1p(c.gamma), x), dims)
        if len(self.photometric):
            x = self.photometric(x)
        if c.noise_std > 0:
            x = x + _chosen(n, c.p, x) * torch.randn_like(x) * c.noise_std * std
        return x


def _geometric(cfg: AugmentConfig) -> list[nn.Module]:
    """The kornia transforms that resample (flips and rot90 are done exactly, in torch)."""
    ops: list[nn.Module] = []
    if cfg.rotate_degrees > 0 or cfg.scale > 0:
        scale = (1 - cfg.scale, 1 + cfg.scale) if cfg.scale > 0 else None
        ops.append(K.RandomAffine(degrees=cfg.rotate_degrees, scale=scale, p=cfg.p))
    if cfg.elastic_alpha > 0:
        side = 2 * math.ceil(2 * cfg.elastic_sigma) + 1
        ops.append(
            K.RandomElasticTransform(
                kernel_size=(side, side),
                sigma=(cfg.elastic_sigma, cfg.elastic_sigma),
                alpha=(cfg.elastic_alpha, cfg.elastic_alpha),
                p=cfg.p,
            )
        )
    return ops


def _chosen(n: int, p: float, like: torch.Tensor) -> torch.Tensor:
    """1 for the images (of ``n``) that get a transform, with probability ``p``; else 0."""
    return (torch.rand(n, 1, 1, 1, device=like.device) < p).to(like.dtype)


def _uniform(n: int, spread: float, like: torch.Tensor) -> torch.Tensor:
    return (torch.rand(n, 1, 1, 1, device=like.device, dtype=like.dtype) * 2 - 1) * spread


def _gamma(x: torch.Tensor, log_gamma: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Gamma on each image's own [min, max] range, mapped back to that range."""
    low = x.amin(dim=dims, keepdim=True)
    span = (x.amax(dim=dims, keepdim=True) - low).clamp_min(1e-6)
    unit = ((x - low) / span).clamp(0, 1)
    return low + span * unit.pow(torch.exp(log_gamma))


def build_augment(cfg: AugmentConfig, ignore_index: int = 255) -> Augment | None:
    """The augmentation module, or None when ``cfg`` switches everything off."""
    augment = Augment(cfg, ignore_index)
    return augment if augment.active else None
