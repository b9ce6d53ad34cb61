"""bench/quality_table.py: runs with different ``--set`` settings are never averaged together."""

from __future__ import annotations

import json

import pytest


def record(system: str, seed: int, test_iou: float, *sets: str) -> dict:
    return {
        "config": "lucchi",
        "system": system,
        "seed": seed,
        "budget": "10m",
        "precision": "bf16-mixed",
        "overrides": ["data.root=/x", f"data.split.seed={seed}", "train.progress=false", *sets],
        "epochs": 20,
        "test_iou": test_iou,
        "test_dice": test_iou + 0.05,
        "test_image_iou": test_iou,
        "val_iou": test_iou + 0.01,
    }


@pytest.fixture
def table_lines(bench_module, tmp_path, capsys, monkeypatch):
    """``table_lines(records)``: the lines bench/quality_table.py prints for a results file
    holding ``records``."""
    table = bench_module("quality_table")

    def run(records: list[dict]) -> list[str]:
        path = tmp_path / "runs.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        monkeypatch.setattr("sys.argv", ["quality_table.py", str(path)])
        table.main()
        return capsys.readouterr().out.splitlines()

    return run


def test_settings_split_the_rows_and_gaps_compare_like_with_like(table_lines):
    records = [
        record("seglab", 0, 0.80),
        record("seglab", 1, 0.82),
        record("seglab", 0, 0.90, "model.name=res_unet"),
        record("smp", 0, 0.70),
        record("smp", 1, 0.72),
        record("smp", 0, 0.60, "model.name=res_unet"),
    ]
    out = "\n".join(table_lines(records))
    assert "| seglab | 2 | 0.8100 ± 0.0141 |" in out
    assert "| seglab, `model.name=res_unet` | 1 | 0.9000 (one run) |" in out
    assert "lucchi 10m bf16-mixed: seglab - smp = +0.1000" in out
    assert "lucchi 10m bf16-mixed (`model.name=res_unet`): seglab - smp = +0.3000" in out


def test_a_seglab_only_model_option_is_compared_with_the_peer_without_it(table_lines):
    records = [
        record("seglab", 0, 0.85, "optim.weight_decay=0.05", "model.dropout=0.1"),
        record("seglab", 0, 0.95, "optim.lr=0.1", "model.dropout=0.1"),
        record("smp", 0, 0.80, "optim.weight_decay=0.05"),
        record("smp", 0, 0.50),
    ]
    gaps = [line for line in table_lines(records) if "seglab - smp" in line]
    # only the peer run with the same non-model settings; none for optim.lr=0.1
    assert gaps == [
        "lucchi 10m bf16-mixed (`optim.weight_decay=0.05`, `model.dropout=0.1`; smp as run "
        "with `optim.weight_decay=0.05`, it ignores model.*): seglab - smp = +0.0500 test IoU "
        "(goal >= +0.03)"
    ]


def test_the_per_seed_table_shows_the_epoch_each_run_kept(bench_module, capsys):
    table = bench_module("quality_table")
    best = {**record("seglab", 0, 0.80), "best_epoch": 14}  # an older record: no kept_epoch
    last = {**record("seglab", 0, 0.81, "train.checkpoint.keep=last"), "best_epoch": 14}
    last["kept_epoch"] = 20
    # a run re-evaluated with another checkpoint's weights: that checkpoint's epoch
    other = {**record("seglab", 0, 0.79, "model.dropout=0.1"), "best_epoch": 14, "kept_epoch": 14}
    other["checkpoint"] = {"file": "runs/x/checkpoints/epoch_17.ckpt", "epoch": 17}
    table.per_seed({table.group_key(r): [r] for r in (best, last, other)})
    rows = [line for line in capsys.readouterr().out.splitlines() if "| 0 |" in line]
    assert [row.rsplit("|", 5)[1:3] for row in rows] == [
        [" 20 ", " 14 "],
        [" 20 ", " 17 "],
        [" 20 ", " 20 "],
    ]


def test_rows_of_one_pipeline_are_compared_across_settings_labels(table_lines):
    records = [
        # seglab --set what the config the peer ran with already said by itself
        {**record("seglab", 0, 0.66, "train.channels_last=auto"), "pipeline": "aaa"},
        {**record("seglab", 1, 0.68, "train.channels_last=auto"), "pipeline": "aaa"},
        {**record("smp", 0, 0.60), "pipeline": "aaa"},
        {**record("smp", 1, 0.62), "pipeline": "aaa"},
        # another pipeline under other labels: no gap line with either
        {**record("monai", 0, 0.50, "optim.lr=0.1"), "pipeline": "bbb"},
        # an older record without a fingerprint: no gap line either
        record("monai", 0, 0.40, "optim.lr=0.2"),
    ]
    gaps = [line for line in table_lines(records) if "seglab - " in line]
    assert gaps == [
        "lucchi 10m bf16-mixed (seglab with `train.channels_last=auto`, smp with -: one "
        "pipeline, aaa): seglab - smp = +0.0600 test IoU (goal >= +0.03)"
    ]


def test_one_label_over_different_pipelines_is_flagged(table_lines):
    records = [
        {**record("seglab", 0, 0.80), "pipeline": "aaa"},
        {**record("seglab", 1, 0.90), "pipeline": "ccc"},  # e.g. the config file changed
        {**record("smp", 0, 0.70), "pipeline": "aaa"},
        {**record("monai", 0, 0.60), "pipeline": "aaa"},
        {**record("monai", 1, 0.60), "pipeline": "aaa"},
    ]
    out = table_lines(records)
    assert [line for line in out if line.startswith("note:")] == [
        "note: lucchi 10m bf16-mixed seglab averages runs of 2 pipelines (aaa, ccc): split the "
        "files to compare them"
    ]
    # the gap is still printed (same labels), but not as one pipeline
    assert "lucchi 10m bf16-mixed: seglab - smp = +0.1500 test IoU (goal >= +0.03)" in out


def test_a_same_label_gap_over_two_known_pipelines_says_so(table_lines):
    records = [
        {**record("seglab", 0, 0.80), "pipeline": "aaa"},
        {**record("smp", 0, 0.70), "pipeline": "bbb"},
    ]
    gaps = [line for line in table_lines(records) if "seglab - " in line]
    assert gaps == [
        "lucchi 10m bf16-mixed [not one pipeline: seglab aaa, smp bbb]: seglab - smp = "
        "+0.1000 test IoU (goal >= +0.03)"
    ]


def test_one_label_over_different_commits_is_flagged_and_each_run_names_its_own(
    bench_module, table_lines, capsys
):
    records = [
        {**record("seglab", 0, 0.80), "pipeline": "aaa", "commit": "4b457ec" + "0" * 33},
        {**record("seglab", 1, 0.90), "pipeline": "aaa", "commit": "0e64b33" + "1" * 33},
        # the same commit twice, and a record from before the harness wrote it: one commit
        {**record("smp", 0, 0.70), "pipeline": "aaa", "commit": "0e64b33" + "1" * 33 + "+dirty"},
        {**record("smp", 1, 0.70), "pipeline": "aaa", "commit": "0e64b33" + "1" * 33 + "+dirty"},
        {**record("smp", 2, 0.70), "pipeline": "aaa"},
    ]
    out = table_lines(records)
    assert [line for line in out if line.startswith("note:")] == [
        "note: lucchi 10m bf16-mixed seglab averages runs of 2 commits (0e64b33, 4b457ec): "
        "split the files to compare them"
    ]
    table = bench_module("quality_table")
    groups: dict = {}
    for r in records:
        groups.setdefault(table.group_key(r), []).append(r)
    table.per_seed(groups)
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines()]
    assert [(row[1], row[3], row[-1]) for row in rows if row[3:] and row[3].isdigit()] == [
        ("seglab", "0", "4b457ec |"),
        ("seglab", "1", "0e64b33 |"),
        ("smp", "0", "0e64b33+dirty |"),
        ("smp", "1", "0e64b33+dirty |"),
        ("smp", "2", "- |"),
    ]
