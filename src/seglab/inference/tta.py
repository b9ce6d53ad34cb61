"""Test-time augmentation: predict transformed copies, undo the transform, average.

Each transform is a pair (apply, undo) on NCHW tensors; probabilities of all the
transformed copies are mapped back and averaged (in probability space).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Transform = tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]


def dihedral(k: int) -> Transform:
    """The k-th of the 8 symmetries of the square: optional mirror, then k % 4 quarter turns."""
    mirror, turns = k >= 4, k % 4

    def apply(x: torch.Tensor) -> torch.Tensor:
        x = x.flip(-1) if mirror else x
        return torch.rot90(x, turns, dims=(-2, -1)) if turns else x

    def undo(x: torch.Tensor) -> torch.Tensor:
        x = torch.rot90(x, -turns, dims=(-2, -1)) if turns else x
        return x.flip(-1) if mirror else x

    return apply, undo


def shifted(transform: Transform, pixels: int) -> Transform:
    """``transform``, then the view moved ``pixels`` down and right (the strip that comes in
    mirrored from the view); undone by cutting that strip off, then undoing ``transform``.

    A network that works on blocks of pixels (``model.space_to_depth``) or downsamples by
    strides sees the moved view on another grid, where flips and turns of an image whose
    sides divide by the block keep the one grid.
    """
    do, undo_inner = transform

    def apply(x: torch.Tensor) -> torch.Tensor:
        x = do(x)
        mode = "reflect" if min(x.shape[-2:]) > pixels else "replicate"
        return F.pad(x, (pixels, 0, pixels, 0), mode=mode)

    def undo(x: torch.Tensor) -> torch.Tensor:
        return undo_inner(x[..., pixels:, pixels:])

    return apply, undo


def flip(dims: tuple[int, ...]) -> Transform:
    def both(x: torch.Tensor) -> torch.Tensor:
        return x.flip(dims) if dims else x

    return both, both


TTA_SETS: dict[str, list[Transform]] = {
    "none": [flip(())],
    "flips": [flip(()), flip((-1,)), flip((-2,)), flip((-2, -1))],
    "dihedral": [dihedral(k) for k in range(8)],
    # each of the 8 also on the image moved by 2 pixels, half a 4x4 space-to-depth block
    "dihedral_shifted": [t for k in range(8) for t in (dihedral(k), shifted(dihedral(k), 2))],
}


def with_tta(
    predict: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, name: str
) -> torch.Tensor:
    """Mean probabilities of ``predict`` over the transforms of TTA set ``name``."""
    transforms = TTA_SETS.get(name)
    if transforms is None:
        raise ValueError(f"unknown TTA {name!r}; known: {sorted(TTA_SETS)}")
    total: torch.Tensor | None = None
    for apply, undo in transforms:
        probs = undo(predict(apply(images)))
        total = probs if total is None else total.add_(probs)
    assert total is not None
    return total if len(transforms) == 1 else total.div_(len(transforms))
