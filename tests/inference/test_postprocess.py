"""Post-processing: small objects, holes, opening; off means unchanged."""

from __future__ import annotations

import numpy as np

from seglab.inference.postprocess import postprocess
from seglab.inference.settings import InferenceSettings
from seglab.inference.threshold import tune_threshold


def scene() -> np.ndarray:
    labels = np.zeros((30, 30), dtype=np.int64)
    labels[2:12, 2:12] = 1  # a 10x10 square with a hole
    labels[6:8, 6:8] = 0
    labels[20, 20] = 1  # a speck
    labels[15, 2:28] = 1  # a one-pixel line
    return labels


def test_nothing_on_leaves_the_map_alone():
    labels = scene()
    assert np.array_equal(postprocess(labels, InferenceSettings()), labels)


def test_remove_small_objects():
    out = postprocess(scene(), InferenceSettings(min_object_size=5))
    assert out[20, 20] == 0 and out[2, 2] == 1 and out[15, 10] == 1


def test_fill_holes():
    out = postprocess(scene(), InferenceSettings(fill_holes=True))
    assert out[6:8, 6:8].all() and out[20, 20] == 1


def test_opening_removes_thin_structures():
    out = postprocess(scene(), InferenceSettings(opening=1))
    assert out[15, 10] == 0 and out[20, 20] == 0 and out[4, 4] == 1


def test_multi_class_steps_work_per_class_and_fill_only_background():
    labels = np.zeros((20, 20), dtype=np.int64)
    labels[1:8, 1:8] = 2
    labels[4:6, 4] = 1  # a class-1 object inside class 2: not a hole to fill
    labels[3, 3] = 0  # a real hole
    labels[15, 15] = 1
    out = postprocess(labels, InferenceSettings(fill_holes=True, min_object_size=2))
    assert out[3, 3] == 2 and out[4, 4] == 1 and out[15, 15] == 0


def test_tuned_threshold_separates_the_classes():
    rng = np.random.default_rng(0)
    mask = (rng.random((40, 40)) < 0.3).astype(np.int64)
    prob = np.where(mask == 1, 0.25, 0.15) + rng.uniform(-0.04, 0.04, mask.shape)
    best, table = tune_threshold([prob.astype(np.float32)], [mask])
    assert 0.19 <= best <= 0.21 and table[best] == 1.0
    assert table[0.5] == 0.0  # the default threshold finds nothing here


def test_tuning_skips_ignored_pixels_and_breaks_ties_towards_half():
    mask = np.array([[1, 0], [255, 0]])
    prob = np.array([[0.9, 0.1], [0.95, 0.2]], dtype=np.float32)
    best, table = tune_threshold([prob], [mask], ignore_index=255)
    assert best == 0.5 and table[0.5] == 1.0
