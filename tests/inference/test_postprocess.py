"""Post-processing: small objects, holes, opening; off means unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from seglab.inference.postprocess import postprocess, settings_key, tune_postprocessing
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


def pooled_iou(probs, masks, threshold, settings, ignore_index=None):
    tp = fp = fn = 0
    for prob, mask in zip(probs, masks, strict=True):
        pred = postprocess((prob > threshold).astype(np.int64), settings) == 1
        valid = mask != ignore_index if ignore_index is not None else np.ones(mask.shape, bool)
        truth = mask == 1
        tp += int((pred & truth & valid).sum())
        fp += int((pred & ~truth & valid).sum())
        fn += int((~pred & truth & valid).sum())
    return tp / (tp + fp + fn)


def test_tuned_postprocessing_scores_every_candidate_like_postprocess():
    rng = np.random.default_rng(1)
    probs, masks = [], []
    for _ in range(3):
        prob = rng.random((40, 40)).astype(np.float32)
        prob = (prob + np.roll(prob, 1, 0) + np.roll(prob, 1, 1)) / 3  # blobs of all sizes
        mask = (rng.random((40, 40)) < 0.4).astype(np.int64)
        mask[rng.random((40, 40)) < 0.1] = 255
        probs.append(prob)
        masks.append(mask)
    _, table = tune_postprocessing(probs, masks, 0.5, 255, min_object_sizes=(3, 10, 50))
    assert len(table) == 3 * 2 * 4  # openings 0-2, filling off/on, sizes 0, 3, 10, 50
    for (radius, fill, size), iou in table.items():
        settings = InferenceSettings(opening=radius, fill_holes=fill, min_object_size=size)
        assert iou == pytest.approx(pooled_iou(probs, masks, 0.5, settings, 255))


def test_tuned_postprocessing_removes_specks_and_fills_holes_with_the_least_processing():
    mask = np.zeros((60, 60), dtype=np.int64)
    mask[5:17, 5:17] = 1  # two 12x12 objects (144 px)
    mask[30:42, 30:42] = 1
    prob = np.where(mask == 1, 0.9, 0.1).astype(np.float32)
    prob[10:12, 10:12] = 0.2  # a hole in the first object
    prob[50:52, 50:52] = 0.8  # a 4-pixel false speck
    chosen, table = tune_postprocessing([prob], [mask], 0.5)
    # sizes 16..128 all remove the speck and keep the objects: the smallest one is chosen;
    # an opening would round the objects' corners
    assert chosen == {"opening": 0, "fill_holes": True, "min_object_size": 16}
    assert settings_key(chosen) == (0, True, 16)
    assert table[(0, True, 16)] == 1.0 > table[(0, False, 0)]
    assert table[(0, True, 256)] == 0.0  # removes the objects too
    perfect = np.where(mask == 1, 0.9, 0.1).astype(np.float32)
    chosen, _ = tune_postprocessing([perfect], [mask], 0.5)
    assert chosen == {"opening": 0, "fill_holes": False, "min_object_size": 0}
