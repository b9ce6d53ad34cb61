"""Batched augmentation on the device: ``Augment(cfg, ignore_index)(images, masks)``.

Runs on whole training batches after they reach the device (GPU or CPU). Flips
and 90-degree rotations are exact index moves in torch; small rotations and
scaling draw kornia's RandomAffine parameters and are warped here, for the
chosen images only; elastic deformation and blur are kornia's. Masks follow every
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
import torch.nn.functional as F
from kornia.geometry.conversions import normalize_homography
from torch import nn

from seglab.config import AugmentConfig

_GRID_NOTICE = ".*Default grid_sample and affine_grid behavior.*"  # kornia's, harmless


class Augment(nn.Module):
    """(images N x C x H x W float, masks N x H x W int64) -> both augmented."""

    def __init__(self, cfg: AugmentConfig, ignore_index: int = 255) -> None:
        super().__init__()
        self.cfg = cfg
        self.ignore_index = ignore_index
        self.affine = _affine(cfg)
        elastic = _elastic(cfg)
        self.elastic = (
            K.AugmentationSequential(elastic, data_keys=["input", "mask"]) if elastic else None
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
            or self.affine is not None
            or self.elastic is not None
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
        if self.affine is not None:
            images, masks = self._warp_affine(images, masks)
        if self.elastic is not None:
            shifted = _shift(masks, images.dtype)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_GRID_NOTICE)
                images, shifted = self.elastic(images, shifted)
            masks = self._unshift(shifted)
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

    def _warp_affine(
        self, images: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotation and scaling of the chosen images: bilinear for images, nearest for masks.

        kornia's ``RandomAffine`` draws the parameters (so the random stream is kornia's);
        the warp is done here, for the chosen images only, with one sampling grid for image
        and mask. kornia's own path warps every image of the batch (image and mask each
        through its general ``warp_affine``) and then keeps the chosen ones.
        """
        op = self.affine
        params = op.forward_parameters(images.shape)
        chosen = params["batch_prob"].to(torch.bool)
        if not bool(chosen.any()):
            return images, masks
        matrix = op.compute_transformation(images, params, op.flags)[chosen]
        size = tuple(images.shape[-2:])
        # pixel matrix -> normalised coordinates, inverted: where each output pixel samples
        normalized = normalize_homography(matrix.to(images.dtype), size, size)
        grid = F.affine_grid(
            torch.linalg.inv(normalized)[:, :2], [matrix.shape[0], 1, *size], align_corners=False
        )
        idx = chosen.nonzero().squeeze(1).to(images.device)
        shifted = _shift(masks[idx], images.dtype)
        images, masks = images.clone(), masks.clone()
        images[idx] = F.grid_sample(images[idx], grid, "bilinear", "zeros", align_corners=False)
        masks[idx] = self._unshift(
            F.grid_sample(shifted, grid, "nearest", "zeros", align_corners=False)
        )
        return images, masks

    def _unshift(self, shifted: torch.Tensor) -> torch.Tensor:
        """``_shift``'s masks back to classes; 0 (brought in from outside) -> ignore_index."""
        masks = shifted.squeeze(1).round().long() - 1
        masks[masks < 0] = self.ignore_index
        return masks

    def dihedral_codes(self, square: bool) -> list[int]:
        """Codes k of the allowed transforms: rotate by 90 * (k % 4), mirrored first if k >= 4."""
        flip, rot = self.cfg.flip, self.cfg.rot90 and square
        if flip and rot:
            return list(range(8))
        if flip:
            return [0, 2, 4, 6]  # identity, both flips (= rot 180), horizontal, vertical
        return [0, 1, 2, 3] if rot else [0]

    def _intensity(self, x: torch.Tensor) -> torch.Tensor:
        """Contrast, brightness, gamma, blur and noise, each on the chosen images.

        Contrast and brightness make one affine map per image, ``a x + b`` with ``a > 0``
        (``contrast < 1``), so the range that gamma works on is the original range mapped
        by it, and the image reaches gamma's [0, 1] scale without being written first.
        """
        c = self.cfg
        if not any((c.brightness, c.contrast, c.gamma, c.noise_std)) and not len(self.photometric):
            return x
        n = x.shape[0]
        dims = tuple(range(1, x.ndim))
        std, mean = torch.std_mean(x, dim=dims, keepdim=True)
        std = std.clamp_min(1e-6)
        scale = torch.ones_like(mean)
        if c.contrast > 0:
            scale = 1 + _chosen(n, c.p, x) * _uniform(n, c.contrast, x)
        shift = mean * (1 - scale)
        if c.brightness > 0:
            shift = shift + _chosen(n, c.p, x) * _uniform(n, c.brightness, x) * std
        if c.gamma > 0:
            log_gamma = _chosen(n, c.p, x) * _uniform(n, math.log1p(c.gamma), x)
            low, high = x.flatten(1).aminmax(dim=1)
            low, high = low.view_as(mean), high.view_as(mean)
            span = (high - low).clamp_min(1e-6)
            unit = ((x - low) / span).clamp_(0, 1).pow_(torch.exp(log_gamma))
            # gamma on the [min, max] range of a x + b, mapped back to that range
            x = torch.addcmul(scale * low + shift, unit, scale * span)
        elif c.contrast > 0 or c.brightness > 0:
            x = torch.addcmul(shift, x, scale)
        if len(self.photometric):
            x = self.photometric(x)
        if c.noise_std > 0:
            weight = _chosen(n, c.p, x) * (c.noise_std * std)  # drawn before the noise
            x = torch.addcmul(x, torch.randn_like(x), weight)
        return x


def _affine(cfg: AugmentConfig) -> K.RandomAffine | None:
    """kornia's RandomAffine for rotation and scaling (None when both are off); only its
    parameters are drawn, the warp is ``Augment._warp_affine``'s."""
    if cfg.rotate_degrees <= 0 and cfg.scale <= 0:
        return None
    scale = (1 - cfg.scale, 1 + cfg.scale) if cfg.scale > 0 else None
    return K.RandomAffine(degrees=cfg.rotate_degrees, scale=scale, p=cfg.p)


def _elastic(cfg: AugmentConfig) -> K.RandomElasticTransform | None:
    """kornia's elastic deformation, applied after rotation and scaling (None when off)."""
    if cfg.elastic_alpha <= 0:
        return None
    side = 2 * math.ceil(2 * cfg.elastic_sigma) + 1
    return K.RandomElasticTransform(
        kernel_size=(side, side),
        sigma=(cfg.elastic_sigma, cfg.elastic_sigma),
        alpha=(cfg.elastic_alpha, cfg.elastic_alpha),
        p=cfg.p,
    )


def _shift(masks: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(N, H, W) classes -> (N, 1, H, W) float classes + 1, to be resampled like an image:
    0 then means "from outside the image" (``Augment._unshift`` undoes it)."""
    return (masks + 1).unsqueeze(1).to(dtype)


def _chosen(n: int, p: float, like: torch.Tensor) -> torch.Tensor:
    """1 for the images (of ``n``) that get a transform, with probability ``p``; else 0."""
    return (torch.rand(n, 1, 1, 1, device=like.device) < p).to(like.dtype)


def _uniform(n: int, spread: float, like: torch.Tensor) -> torch.Tensor:
    return (torch.rand(n, 1, 1, 1, device=like.device, dtype=like.dtype) * 2 - 1) * spread


def build_augment(cfg: AugmentConfig, ignore_index: int = 255) -> Augment | None:
    """The augmentation module, or None when ``cfg`` switches everything off."""
    augment = Augment(cfg, ignore_index)
    return augment if augment.active else None
