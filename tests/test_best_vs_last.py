"""bench/best_vs_last.py: the last checkpoint's weights, scored like the kept ones."""

from __future__ import annotations

import pytest

from seglab.runs import Run, read_json


@pytest.fixture
def best_vs_last(bench_module):
    return bench_module("best_vs_last")


def test_a_run_whose_last_epoch_is_its_best_scores_the_same_both_ways(
    best_vs_last, tiny_quality_run
):
    record = tiny_quality_run("name: tiny\neval:\n  tta: none\n", ["train.epochs=1", "seed=2"])
    assert record["best_epoch"] == record["epochs"] == 1
    run = Run.open(record["run"])

    scores = best_vs_last.val_scores(run, "flips")

    assert scores["epoch_last"] == 1
    for mode in ("none", "tta"):  # the last checkpoint's weights are the kept ones here
        assert scores[f"val_iou_last_{mode}"] == scores[f"val_iou_best_{mode}"]
        assert scores[f"threshold_last_{mode}"] == scores[f"threshold_best_{mode}"]
    assert scores["tta"] == "flips"
    # one pass at the tuned threshold is what the run's own evaluation measured on validation
    tuning = read_json(run.path / "metrics.json")["threshold_tuning"]
    assert scores["threshold_best_none"] == tuning["chosen"]
    assert scores["val_iou_best_none"] == pytest.approx(tuning["val_iou_at_chosen"], abs=1e-6)
