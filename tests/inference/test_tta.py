"""Test-time augmentation: every transform is undone exactly; averages in probability space."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seglab.inference.tta import TTA_SETS, with_tta


@pytest.mark.parametrize("name", sorted(TTA_SETS))
def test_every_transform_is_undone(name):
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)
    for apply, undo in TTA_SETS[name]:
        assert torch.equal(undo(apply(x)), x)


def test_set_sizes():
    names = ("none", "flips", "dihedral", "dihedral_shifted")
    assert [len(TTA_SETS[n]) for n in names] == [1, 4, 8, 16]
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    images = {tuple(apply(x).flatten().tolist()) for apply, _ in TTA_SETS["dihedral"]}
    assert len(images) == 8  # eight distinct symmetries


def test_equivariant_model_is_unchanged_and_tta_averages():
    x = torch.randn(1, 1, 6, 9)
    assert torch.allclose(with_tta(torch.sigmoid, x, "dihedral"), torch.sigmoid(x), atol=1e-6)

    def left_biased(t: torch.Tensor) -> torch.Tensor:  # probability 1 on the left column only
        out = torch.zeros_like(t)
        out[..., 0] = 1.0
        return out

    averaged = with_tta(left_biased, torch.zeros(1, 1, 4, 4), "flips")
    # the left column is predicted in 2 of 4 flips, the right (mirrored) in the other 2
    assert torch.allclose(averaged[..., 0], torch.full((1, 1, 4), 0.5))
    assert torch.allclose(averaged[..., -1], torch.full((1, 1, 4), 0.5))
    assert float(averaged[..., 1:-1].abs().max()) == 0.0


def block_mean(t: torch.Tensor) -> torch.Tensor:
    """A model that sees 4x4 blocks, as a space-to-depth network does: each pixel gets the
    mean of its block (the input padded to a multiple of 4, the output cut back)."""
    height, width = t.shape[-2:]
    padded = F.pad(t, (0, -width % 4, 0, -height % 4), mode="replicate")
    blocks = F.interpolate(F.avg_pool2d(padded, 4), scale_factor=4, mode="nearest")
    return blocks[..., :height, :width]


def test_shifted_views_put_a_block_model_on_a_second_grid():
    x = torch.rand(1, 1, 8, 12)
    # flips and turns of an image whose sides divide by 4 keep the one grid
    assert torch.allclose(with_tta(block_mean, x, "dihedral"), block_mean(x), atol=1e-6)
    shifted = with_tta(block_mean, x, "dihedral_shifted")
    assert shifted.shape == x.shape
    # the shifted half sees blocks that straddle the first grid's: pixel (3, 3) is averaged
    # with (0..3, 0..3) in one half and with (2..5, 2..5) in the other
    other_grid = F.pad(x, (2, 0, 2, 0), mode="reflect")
    expected = (x[..., :4, :4].mean() + other_grid[..., 4:8, 4:8].mean()) / 2
    assert torch.isclose(shifted[0, 0, 3, 3], expected, atol=1e-6)


def test_unknown_tta_is_refused():
    with pytest.raises(ValueError, match="unknown TTA"):
        with_tta(torch.sigmoid, torch.zeros(1, 1, 2, 2), "rotations")
