"""Losses against a class map pooled over coarse cells (deep supervision at native resolution).

A coarse logit stands for the pixels of its cell. Scoring it against the cell's class
shares must give exactly the loss of the same logit repeated over those pixels (nearest
upsampling) against the full-resolution class map, for every registered loss.
"""

import pytest
import torch

from seglab.config import LossConfig
from seglab.losses import create_loss
from seglab.losses.functional import pool_target

IGNORE = 255


def _repeat(logits: torch.Tensor, factor: tuple[int, int]) -> torch.Tensor:
    return logits.repeat_interleave(factor[0], dim=-2).repeat_interleave(factor[1], dim=-1)


def _case(channels: int, ignore: bool, seed: int, size=(6, 5), factor=(4, 2)):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, channels, *size, generator=gen, dtype=torch.float64) * 2
    full = (size[0] * factor[0], size[1] * factor[1])
    classes = 2 if channels == 1 else channels
    target = torch.randint(0, classes, (3, *full), generator=gen)
    if ignore:
        target[torch.rand(target.shape, generator=gen) < 0.3] = IGNORE
        target[0, : factor[0], : factor[1]] = IGNORE  # one cell with no pixel that counts
    return logits, target


LOSSES = [
    dict(name="ce"),
    dict(name="focal"),
    dict(name="focal", focal_alpha=None),
    dict(name="dice"),
    dict(name="jaccard"),
    dict(name="tversky"),
    dict(name="bce_dice"),
    dict(name="focal_dice"),
]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("spec", LOSSES, ids=lambda s: "-".join(map(str, s.values())))
def test_pooled_loss_equals_the_full_resolution_loss_of_repeated_logits(channels, ignore, spec):
    logits, target = _case(channels, ignore, seed=channels * 10 + ignore)
    loss = create_loss(LossConfig(**spec), channels, IGNORE if ignore else None)
    pooled = pool_target(target, logits.shape[-2:], channels, IGNORE if ignore else None)
    want = loss(_repeat(logits, (4, 2)), target)
    got = loss(logits, pooled)
    assert torch.allclose(got.double(), want, rtol=1e-5, atol=1e-6), (float(got), float(want))


@pytest.mark.parametrize("channels", [1, 3])
def test_class_weights_count_per_pixel_in_pooled_cells(channels):
    logits, target = _case(channels, True, seed=7)
    weights = [0.3, 2.0] if channels == 1 else [0.5, 1.0, 3.0]
    for name in ("ce", "focal"):
        loss = create_loss(LossConfig(name=name, class_weights=weights), channels, IGNORE)
        pooled = pool_target(target, logits.shape[-2:], channels, IGNORE)
        want = loss(_repeat(logits, (4, 2)), target)
        assert torch.allclose(loss(logits, pooled).double(), want, rtol=1e-5), name


def test_an_extent_larger_than_the_map_counts_the_padding_nowhere():
    # a model that pads a 21 x 9 input to 24 x 10 gives 6 x 5 coarse logits over the padding
    logits, target = _case(1, False, seed=3)
    cropped = target[:, :21, :9]
    loss = create_loss(LossConfig(name="bce_dice"), 1)
    pooled = pool_target(cropped, (6, 5), 1, None, extent=(24, 10))
    want = loss(_repeat(logits, (4, 2))[..., :21, :9], cropped)
    assert torch.allclose(loss(logits, pooled).double(), want, rtol=1e-5)
    assert pooled.keep[0, -1, -1] == pytest.approx(1 / 8)  # 1 of the cell's 4 x 2 pixels


def test_cells_that_do_not_divide_the_extent_are_refused():
    with pytest.raises(ValueError, match="equal cells"):
        pool_target(torch.zeros(1, 10, 10, dtype=torch.long), (3, 5), 1)
    with pytest.raises(ValueError, match="equal cells"):
        pool_target(torch.zeros(1, 10, 10, dtype=torch.long), (5, 5), 1, extent=(8, 10))


def test_the_gradient_flows_to_the_coarse_logits():
    logits, target = _case(1, True, seed=5)
    logits.requires_grad_(True)
    loss = create_loss(LossConfig(name="bce_dice"), 1, IGNORE)
    loss(logits, pool_target(target, logits.shape[-2:], 1, IGNORE)).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
