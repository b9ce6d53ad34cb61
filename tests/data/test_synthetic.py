"""Tests for seglab.data.synthetic: determinism, formats and that the tasks are not trivial."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from seglab.data.synthetic import GENERATORS, generate, make_crack_image, make_em_image
from seglab.errors import SeglabError

KINDS = ["em", "crack"]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def test_generators_table_names_both_kinds() -> None:
    assert GENERATORS == {"em": make_em_image, "crack": make_crack_image}


@pytest.mark.parametrize("kind", KINDS)
def test_same_arguments_give_byte_identical_output(kind: str) -> None:
    first = generate(kind, 3, 40, 56, seed=7)
    second = generate(kind, 3, 40, 56, seed=7)
    for (name_a, image_a, mask_a), (name_b, image_b, mask_b) in zip(first, second, strict=True):
        assert name_a == name_b
        assert image_a.tobytes() == image_b.tobytes()
        assert mask_a.tobytes() == mask_b.tobytes()


@pytest.mark.parametrize("kind", KINDS)
def test_different_seeds_or_indices_give_different_images(kind: str) -> None:
    (_, image_a, mask_a), (_, image_b, _) = generate(kind, 2, 48, 48, seed=1)
    (_, image_c, mask_c), _ = generate(kind, 2, 48, 48, seed=2)
    assert not np.array_equal(image_a, image_b)
    assert not np.array_equal(image_a, image_c)
    assert not np.array_equal(mask_a, mask_c)


@pytest.mark.parametrize("kind", KINDS)
def test_image_i_does_not_depend_on_n_images(kind: str) -> None:
    few = generate(kind, 2, 32, 32, seed=3)
    many = generate(kind, 5, 32, 32, seed=3)
    for (name_a, image_a, mask_a), (name_b, image_b, mask_b) in zip(few, many[:2], strict=True):
        assert name_a == name_b
        assert np.array_equal(image_a, image_b)
        assert np.array_equal(mask_a, mask_b)
    image, mask = GENERATORS[kind](np.random.default_rng([3, 4]), 32, 32)
    assert np.array_equal(many[4][1], image)
    assert np.array_equal(many[4][2], mask)


@pytest.mark.parametrize("kind", KINDS)
def test_names_dtypes_shapes_and_ranges(kind: str) -> None:
    samples = generate(kind, 4, 48, 80, seed=0)
    assert [name for name, _, _ in samples] == [f"{kind}_{i:04d}" for i in range(4)]
    for _, image, mask in samples:
        assert image.dtype == np.float32 and image.shape == (48, 80)
        assert mask.dtype == np.uint8 and mask.shape == (48, 80)
        assert np.isfinite(image).all()
        assert image.min() >= 0.0 and image.max() <= 1.0
        assert image.std() > 0.02  # textured, not flat
        assert set(np.unique(mask).tolist()) <= {0, 1}


def test_zero_images_gives_an_empty_list() -> None:
    assert generate("em", 0, 32, 32, seed=0) == []


@pytest.mark.parametrize(("kind", "low", "high"), [("em", 0.05, 0.25), ("crack", 0.01, 0.06)])
def test_foreground_fraction_is_in_the_typical_range(kind: str, low: float, high: float) -> None:
    fractions = [mask.mean() for _, _, mask in generate(kind, 20, 128, 128, seed=11)]
    assert low <= np.mean(fractions) <= high
    assert min(fractions) > 0.0


def test_em_foreground_is_darker_but_not_simply_the_darkest_pixels() -> None:
    ious = []
    for _, image, mask in generate("em", 20, 128, 128, seed=5):
        foreground = mask.astype(bool)
        assert image[foreground].mean() < image[~foreground].mean() - 0.05
        darkest = image <= np.quantile(image, foreground.mean())
        ious.append(_iou(darkest, foreground))
    assert np.mean(ious) < 0.6
    assert max(ious) < 0.75


def test_em_mitochondria_have_a_dark_rim() -> None:
    for _, image, mask in generate("em", 5, 128, 128, seed=9):
        inside = mask.astype(bool)
        rim = inside & ~ndi.binary_erosion(inside, iterations=3)
        core = ndi.binary_erosion(inside, iterations=6)
        if core.sum() > 20:
            assert image[rim].mean() < image[core].mean()


def test_crack_masks_are_thin() -> None:
    remaining = []
    for _, _, mask in generate("crack", 20, 128, 128, seed=13):
        eroded = ndi.binary_erosion(mask.astype(bool), structure=np.ones((3, 3)))
        remaining.append(eroded.sum() / mask.sum())
    assert max(remaining) <= 0.35
    assert np.mean(remaining) <= 0.2


def test_crack_pixels_are_darker_than_their_surroundings() -> None:
    for _, image, mask in generate("crack", 5, 128, 128, seed=17):
        crack = mask.astype(bool)
        near = ndi.binary_dilation(crack, iterations=4) & ~ndi.binary_dilation(crack, iterations=1)
        assert image[crack].mean() < image[near].mean() - 0.1


def test_unknown_kind_raises_seglab_error_with_hint() -> None:
    with pytest.raises(SeglabError, match="unknown synthetic kind 'vessels'") as info:
        generate("vessels", 1, 32, 32, seed=0)
    assert info.value.hint == "use one of: em, crack"
