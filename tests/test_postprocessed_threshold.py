"""bench/postprocessed_threshold.py: the threshold tuned on raw maps or on post-processed
masks, each scored on the other half of validation."""

from __future__ import annotations

import numpy as np
import pytest

from seglab.inference.settings import InferenceSettings
from seglab.inference.threshold import tune_threshold
from seglab.runs import Run


@pytest.fixture
def pt(bench_module):
    return bench_module("postprocessed_threshold")


def square_and_specks() -> tuple[np.ndarray, np.ndarray]:
    """A 10x10 object (inner 8x8 at p 0.6, its rim at 0.3) and 300 lone background pixels
    at p 0.35: on the raw map the specks make every threshold under 0.35 worse than those
    from 0.35 to 0.6; once objects under 4 px are removed, a threshold under 0.3 is perfect."""
    mask = np.zeros((80, 80), np.uint8)
    prob = np.zeros((80, 80), np.float32)
    mask[30:40, 30:40] = 1
    prob[30:40, 30:40] = 0.3
    prob[31:39, 31:39] = 0.6
    specks = [
        (y, x)
        for y in range(0, 80, 2)
        for x in range(0, 80, 2)
        if not (27 < y < 43 and 27 < x < 43)
    ]
    for y, x in specks[:300]:
        prob[y, x] = 0.35
    return prob, mask


def test_without_post_processing_the_table_is_the_raw_threshold_table(pt):
    prob, mask = square_and_specks()
    mask[0, 1] = 255  # an ignored pixel
    raw = tune_threshold([prob], [mask], 255)[1]
    table = pt.postprocessed_table([prob], [mask], InferenceSettings(), 255)
    assert table == pytest.approx(raw)


def test_thresholds_tuned_on_post_processed_masks_see_what_the_post_processing_removes(pt):
    prob, mask = square_and_specks()
    raw = tune_threshold([prob], [mask])[1]
    table = pt.postprocessed_table([prob], [mask], InferenceSettings(min_object_size=4), None)

    assert 0.35 <= pt.best_threshold(raw) < 0.6  # the specks push the raw choice above them
    assert raw[pt.best_threshold(raw)] == pytest.approx(64 / 100)
    assert pt.best_threshold(table) < 0.3  # post-processing removes them: the rim can come in
    assert table[pt.best_threshold(table)] == pytest.approx(1.0)
    assert table[0.5] == pytest.approx(64 / 100)


def test_a_run_is_judged_on_each_half_at_the_thresholds_tuned_on_the_other(pt, tiny_quality_run):
    overrides = ["data.synthetic.n_images=24", "train.epochs=2", "seed=1"]
    record = tiny_quality_run("name: tiny\neval:\n  tta: none\n", overrides)
    run = Run.open(record["run"])

    with pytest.raises(SystemExit, match="post-process nothing"):
        pt.judge_run(run, [])
    rows = pt.judge_run(run, ["eval.min_object_size=3"])

    assert [r["direction"] for r in rows] == ["A->B", "B->A"]
    for row in rows:
        assert row["best_possible_iou"] >= max(row["raw_iou"], row["postprocessed_iou"])
        assert 0.05 <= row["raw_threshold"] <= 0.95
