"""bench/quality.py --budget null: fixed epochs, no clock, so a seed fixes the run."""

from __future__ import annotations

import pytest

from seglab.config import load_config


@pytest.fixture
def quality(bench_module):
    return bench_module("quality")


def test_the_record_names_the_clock_or_else_the_epochs(quality):
    assert quality.budget_label("10m", 50) == "10m"
    assert quality.budget_label(None, 50) == "50 epochs"


def test_budget_null_trains_the_config_epochs_and_repeats_exactly(tiny_quality_run, tiny_overrides):
    # a config that sets a clock: --budget null must lift it, or the epochs would depend on speed
    config = "name: tiny\ntrain:\n  time_budget: 1m\n"
    overrides = [
        "train.epochs=2",
        "seed=3",
        "train.time_budget=null",  # what main() passes for --budget null
    ]
    first = tiny_quality_run(config, overrides, "a")
    second = tiny_quality_run(config, overrides, "b")
    overrides = [*tiny_overrides, "train.accelerator=cpu", *overrides]  # as the runs had them

    assert first["budget"] == "2 epochs"
    assert first["epochs"] == 2
    assert "budget" not in first["stopped_because"]
    assert first["overrides"] == [o for o in overrides if not o.startswith(("seed=", "train.time"))]
    for key in ("steps", "best_epoch", "val_iou", "threshold", "test_iou", "test_dice", "pipeline"):
        assert first[key] == second[key], key


def test_the_pipeline_fingerprint_follows_what_trains_not_its_spelling(quality, tmp_path):
    in_file = tmp_path / "in_file.yaml"
    in_file.write_text("name: a\ntrain:\n  channels_last: auto\n", encoding="utf-8")
    plain = tmp_path / "plain.yaml"
    plain.write_text("name: b\n", encoding="utf-8")

    def fingerprint(path, *sets: str) -> str:
        return quality.pipeline_fingerprint(load_config(str(path), list(sets)))

    committed = fingerprint(in_file)
    # the same setting from --set, another seed, network, data root or progress bar
    assert fingerprint(plain, "train.channels_last=auto") == committed
    assert fingerprint(in_file, "seed=4", "train.progress=false") == committed
    assert fingerprint(in_file, "model.name=res_unet", "model.dropout=0.1") == committed
    folder = fingerprint(in_file, "data.source=folder", f"data.root={tmp_path}")
    assert folder == fingerprint(in_file, "data.source=folder", f"data.root={tmp_path / 'b'}")
    assert folder != committed  # another data source
    # anything else that trains or evaluates differently is another pipeline
    for other in ("optim.lr=0.1", "data.split.seed=7", "eval.tta=flips", "train.epochs=3"):
        assert fingerprint(in_file, other) != committed, other
