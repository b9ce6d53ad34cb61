"""bench/quality_reeval.py: runs evaluated again, with other eval settings or weights."""

from __future__ import annotations

import pytest


def test_reevaluating_the_last_checkpoint_is_a_keep_last_record(bench_module, tiny_quality_run):
    reeval = bench_module("quality_reeval")
    # the later epoch counts as the better one: the kept weights are the last ones
    keep_later = ["train.checkpoint.monitor=epoch", "train.checkpoint.mode=max"]
    record = tiny_quality_run("name: tiny\neval:\n  tta: none\n", ["train.epochs=2", *keep_later])

    result = reeval.reevaluate(record, [], "last.ckpt")

    assert result["checkpoint"]["epoch"] == record["epochs"] == record["kept_epoch"] == 2
    # what train.checkpoint.keep: last would have kept: the table groups it by that setting
    assert result["overrides"] == [*record["overrides"], "train.checkpoint.keep=last"]
    assert result["test_iou_plain"] == pytest.approx(record["test_iou"])
    assert result["test_iou"] == pytest.approx(record["test_iou"])  # the same weights
    assert result["threshold"] == record["threshold"]
