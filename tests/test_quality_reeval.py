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


def test_a_reevaluation_carries_the_fingerprint_of_a_run_trained_with_its_settings(
    bench_module, tiny_quality_run
):
    reeval = bench_module("quality_reeval")
    plain = tiny_quality_run("name: tiny\neval:\n  tta: none\n", ["train.epochs=1"], "a")
    trained_so = tiny_quality_run("name: tiny\neval:\n  tta: flips\n", ["train.epochs=1"], "b")
    kept_last = tiny_quality_run(
        "name: tiny\neval:\n  tta: none\n", ["train.epochs=1", "train.checkpoint.keep=last"], "c"
    )

    flips = reeval.reevaluate(plain, ["eval.tta=flips"])
    last = reeval.reevaluate(plain, [], "last.ckpt")

    # quality_table.py pairs a re-evaluation with runs that trained and evaluated that way
    assert flips["pipeline"] == trained_so["pipeline"] != plain["pipeline"]
    assert last["pipeline"] == kept_last["pipeline"] != plain["pipeline"]


def test_a_record_says_which_precision_the_forward_passes_ran_in(bench_module, tiny_quality_run):
    reeval = bench_module("quality_reeval")
    record = tiny_quality_run("name: tiny\neval:\n  tta: none\n", ["eval.cpu_precision=32"])
    assert record["inference_precision"] == "32"

    bf16 = reeval.reevaluate(record, ["eval.cpu_precision=bf16-mixed"])

    assert bf16["inference_precision"] == "bf16-mixed"
    assert bf16["test_iou"] == pytest.approx(record["test_iou"], abs=0.02)
    assert bf16["pipeline"] != record["pipeline"]  # not averaged with float32 evaluations


def test_the_best_checkpoint_of_an_ensemble_run_is_an_ensemble_of_one_record(
    bench_module, tiny_quality_run
):
    reeval = bench_module("quality_reeval")
    yaml = "name: tiny\neval:\n  tta: none\n"
    ensemble = tiny_quality_run(yaml, ["train.epochs=3", "train.checkpoint.ensemble=2"], "a")
    single = tiny_quality_run(yaml, ["train.epochs=3", "train.checkpoint.ensemble=1"], "b")
    assert len(ensemble["ensemble_epochs"]) == 2

    best = reeval.reevaluate(ensemble, [], "best.ckpt")
    last = reeval.reevaluate(ensemble, [], "last.ckpt")

    # one network, the run's best epoch: what ensemble: 1 keeps, not a second ensemble row
    assert best["checkpoint"]["epoch"] == ensemble["best_epoch"]
    assert [o for o in best["overrides"] if "ensemble" in o] == ["train.checkpoint.ensemble=1"]
    assert best["pipeline"] == single["pipeline"] != ensemble["pipeline"]
    # keep: last cannot go with an ensemble; the last epoch alone is a run of neither
    assert last["overrides"][-2:] == ["train.checkpoint.ensemble=1", "train.checkpoint.keep=last"]
    assert last["pipeline"] not in (single["pipeline"], ensemble["pipeline"])


def test_a_postprocessing_setting_is_judged_after_postprocessing(bench_module, tiny_quality_run):
    reeval = bench_module("quality_reeval")
    record = tiny_quality_run("name: tiny\neval:\n  tta: none\n", ["train.epochs=1"])
    assert record["val_iou_postprocessed"] is None  # none configured
    assert record["val_iou"] > 0

    # objects of a billion pixels: every predicted object is removed
    result = reeval.reevaluate(record, ["eval.min_object_size=1000000000"])

    # the raw validation figure cannot see post-processing; the new one can
    assert result["val_iou"] == pytest.approx(result["val_iou_plain"])
    assert result["val_iou_postprocessed"] == 0.0
    assert result["val_iou_postprocessed_plain"] is None
    note = reeval.postprocessed_note(result)
    assert note == f", val IoU after post-processing {record['val_iou']:.4f} -> 0.0000"
    # the system's summary averages the same figures the lines show
    assert "after post-processing" in reeval.summary_line("seglab", [result], "x")


def test_the_summary_averages_validation_after_postprocessing_where_a_run_had_it(bench_module):
    reeval = bench_module("quality_reeval")

    def row(val_plain, val, post_plain, post):
        return {
            "val_iou_plain": val_plain,
            "val_iou": val,
            "val_iou_postprocessed_plain": post_plain,
            "val_iou_postprocessed": post,
            "test_iou_plain": 0.5,
            "test_iou": 0.6,
        }

    # raw validation level with both runs; after post-processing one rose, one fell
    rows = [row(0.70, 0.70, None, 0.72), row(0.60, 0.60, None, 0.58)]
    line = reeval.summary_line("seglab", rows, "eval.min_object_size=100")
    assert "mean val IoU 0.6500 -> 0.6500 (up with 0)" in line
    assert "after post-processing 0.6500 -> 0.6500 (up with 1)" in line
    assert line.endswith("mean test IoU 0.5000 -> 0.6000 with eval.min_object_size=100")

    # a run whose evaluations post-processed neither time counts with its raw figures
    rows = [row(0.70, 0.71, None, 0.74), row(0.60, 0.62, None, None)]
    line = reeval.summary_line("seglab", rows, "x")
    assert "mean val IoU 0.6500 -> 0.6650 (up with 2)" in line
    assert "after post-processing 0.6500 -> 0.6800 (up with 2)" in line

    # nobody post-processed: no such figure
    assert "post-processing" not in reeval.summary_line("smp", [row(0.6, 0.5, None, None)], "x")
