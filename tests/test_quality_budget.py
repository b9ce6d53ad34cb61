"""bench/quality.py --budget null: fixed epochs, no clock, so a seed fixes the run."""

from __future__ import annotations

import pytest


@pytest.fixture
def quality(bench_module):
    return bench_module("quality")


def test_the_record_names_the_clock_or_else_the_epochs(quality):
    assert quality.budget_label("10m", 50) == "10m"
    assert quality.budget_label(None, 50) == "50 epochs"


def test_budget_null_trains_the_config_epochs_and_repeats_exactly(
    quality, tmp_path, tiny_overrides, monkeypatch
):
    monkeypatch.setattr(quality, "reference_step_ms", lambda device: 1.0)  # not under test
    config = tmp_path / "tiny.yaml"
    # a config that sets a clock: --budget null must lift it, or the epochs would depend on speed
    config.write_text("name: tiny\ntrain:\n  time_budget: 1m\n", encoding="utf-8")
    overrides = [
        *tiny_overrides,
        "train.accelerator=cpu",
        "train.epochs=2",
        "seed=3",
        "train.time_budget=null",  # what main() passes for --budget null
    ]
    first = quality.one_run(str(config), overrides, tmp_path / "a", "seglab")
    second = quality.one_run(str(config), overrides, tmp_path / "b", "seglab")

    assert first["budget"] == "2 epochs"
    assert first["epochs"] == 2
    assert "budget" not in first["stopped_because"]
    assert first["overrides"] == [o for o in overrides if not o.startswith(("seed=", "train.time"))]
    for key in ("steps", "best_epoch", "val_iou", "threshold", "test_iou", "test_dice"):
        assert first[key] == second[key], key
