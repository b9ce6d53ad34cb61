import pytest
import torch

from seglab.config import AugmentConfig
from seglab.data.augment import Augment, build_augment

HEAVY = dict(rotate_degrees=30, scale=0.2, elastic_alpha=1.0, elastic_sigma=4.0, p=1.0)


def batch(n=6, side=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    masks = torch.randint(0, 3, (n, side, side), generator=g)
    masks[:, :4] = 255  # ignored pixels
    images = masks.to(torch.float32).unsqueeze(1).repeat(1, 2, 1, 1)  # the image *is* the mask
    return images, masks


def test_flips_and_rot90_move_image_and_mask_together_exactly():
    torch.manual_seed(0)
    images, masks = batch()
    out_i, out_m = Augment(AugmentConfig())(images, masks)
    assert torch.equal(out_i[:, 0].long(), out_m) and torch.equal(out_i[:, 1].long(), out_m)
    assert not torch.equal(out_m, masks)  # something happened
    assert sorted(out_m.unique().tolist()) == [0, 1, 2, 255]


def test_resampling_transforms_keep_class_values_and_pad_with_ignore_index():
    torch.manual_seed(1)
    images, masks = batch()
    masks[:, :4] = 0
    out_i, out_m = Augment(AugmentConfig(flip=False, rot90=False, **HEAVY), 7)(images, masks)
    assert out_m.dtype == torch.int64 and out_i.shape == images.shape
    assert set(out_m.unique().tolist()) <= {0, 1, 2, 7}
    assert (out_m == 7).any()  # rotation brought in pixels from outside the image


def test_intensity_transforms_leave_masks_alone_and_stay_finite():
    torch.manual_seed(2)
    images = torch.randn(4, 3, 24, 24)
    masks = torch.randint(0, 2, (4, 24, 24))
    cfg = AugmentConfig(
        flip=False,
        rot90=False,
        p=1.0,
        brightness=0.5,
        contrast=0.5,
        gamma=0.5,
        noise_std=0.1,
        blur_sigma=1.0,
    )
    out_i, out_m = Augment(cfg)(images, masks)
    assert torch.equal(out_m, masks) and torch.isfinite(out_i).all()
    assert not torch.allclose(out_i, images)


@pytest.mark.parametrize("kw", [dict(enabled=False), dict(flip=False, rot90=False)])
def test_switched_off_augmentation_is_none(kw):
    assert build_augment(AugmentConfig(**kw)) is None


def test_augment_section_accepts_a_plain_switch():
    from seglab.config import DataConfig

    assert DataConfig(augment=False).augment.enabled is False
    assert DataConfig(augment=True).augment.flip is True


def test_rotation_and_scaling_match_kornias_own_warp_with_the_same_draws():
    """Augment warps only the chosen images itself; kornia's path (every image, then the
    chosen kept) must give the same images and masks from the same random draws."""
    import kornia.augmentation as K

    images, masks = batch(n=8, side=40, seed=3)
    # the image is the mask (ignored pixels as 3) plus a ramp, so that bilinear shows
    images = masks.clamp(max=3).unsqueeze(1).float() + torch.linspace(0, 1, 40)
    cfg = AugmentConfig(flip=False, rot90=False, rotate_degrees=25, scale=0.2, p=0.5)
    torch.manual_seed(4)
    out_i, out_m = Augment(cfg, 9)(images, masks)
    torch.manual_seed(4)
    reference = K.AugmentationSequential(
        K.RandomAffine(degrees=25, scale=(0.8, 1.2), p=0.5), data_keys=["input", "mask"]
    )
    ref_i, shifted = reference(images, (masks + 1).unsqueeze(1).float())
    ref_m = shifted.squeeze(1).round().long() - 1
    ref_m[ref_m < 0] = 9
    assert torch.allclose(out_i, ref_i, atol=1e-3)
    assert (out_m != ref_m).float().mean() < 1e-3  # nearest may round a tie the other way
    kept = (out_i == images).flatten(1).all(1)
    assert 0 < kept.sum() < 8  # p = 0.5: some images warped, the others untouched
    assert torch.equal(out_m[kept], masks[kept])


def test_intensity_transforms_equal_the_step_by_step_definition():
    """Contrast and brightness folded into one affine map, gamma on the mapped range:
    the same as applying each transform in turn to a written-out image."""
    import math

    torch.manual_seed(5)
    images = torch.randn(6, 2, 20, 20) * 2 + 1
    masks = torch.zeros(6, 20, 20, dtype=torch.long)
    cfg = AugmentConfig(
        flip=False, rot90=False, p=0.5, brightness=0.4, contrast=0.6, gamma=0.5, noise_std=0.2
    )
    torch.manual_seed(6)
    out, _ = Augment(cfg)(images, masks)

    torch.manual_seed(6)  # the same draws, in the same order
    x, n, dims = images, 6, (1, 2, 3)

    def chosen():
        return (torch.rand(n, 1, 1, 1) < cfg.p).float()

    def uniform(spread):
        return (torch.rand(n, 1, 1, 1) * 2 - 1) * spread

    mean, std = x.mean(dims, keepdim=True), x.std(dims, keepdim=True)
    x = mean + (x - mean) * (1 + chosen() * uniform(cfg.contrast))
    x = x + chosen() * uniform(cfg.brightness) * std
    log_gamma = chosen() * uniform(math.log1p(cfg.gamma))
    low, high = x.amin(dims, keepdim=True), x.amax(dims, keepdim=True)
    x = low + (high - low) * ((x - low) / (high - low)).clamp(0, 1).pow(log_gamma.exp())
    x = x + chosen() * torch.randn_like(x) * cfg.noise_std * std
    assert torch.allclose(out, x, atol=1e-4)
