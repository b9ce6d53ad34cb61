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
