"""Test-time augmentation: every transform is undone exactly; averages in probability space."""

from __future__ import annotations

import pytest
import torch

from seglab.inference.tta import TTA_SETS, with_tta


@pytest.mark.parametrize("name", sorted(TTA_SETS))
def test_every_transform_is_undone(name):
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)
    for apply, undo in TTA_SETS[name]:
        assert torch.equal(undo(apply(x)), x)


def test_set_sizes():
    assert [len(TTA_SETS[n]) for n in ("none", "flips", "dihedral")] == [1, 4, 8]
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


def test_unknown_tta_is_refused():
    with pytest.raises(ValueError, match="unknown TTA"):
        with_tta(torch.sigmoid, torch.zeros(1, 1, 2, 2), "rotations")
