"""The command line: exit codes, one-line errors, and the whole pipeline end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from seglab import __version__
from seglab.cli import main
from seglab.runs import read_csv

RUN_FILES = [
    "config.yaml",
    "environment.json",
    "history.csv",
    "metrics.json",
    "split.json",
    "train.log",
    "report.html",
    "per_image.csv",
    "train_summary.json",
    "model/model.safetensors",
    "model/model.json",
    "checkpoints/best.ckpt",
    "checkpoints/last.ckpt",
]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ")
    assert "\n" not in err and "Traceback" not in err
    return err


def test_version(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_missing_config_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml"), "--runs-dir", str(tmp_path / "r")]) == 2
    assert "config file not found" in one_line_error(capsys)
    assert not (tmp_path / "r").exists()


def test_malformed_yaml(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: 3\n")
    assert main(["train", str(bad), "--runs-dir", str(tmp_path / "r")]) == 2
    assert "bad.yaml: malformed YAML" in one_line_error(capsys)


def test_unknown_key(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  epoch: 3\n")
    assert main(["run", str(cfg), "--runs-dir", str(tmp_path / "r")]) == 2
    assert "unknown key train.epoch; did you mean train.epochs?" in one_line_error(capsys)


def test_impossible_value_from_set(tmp_path, capsys):
    assert main(["run", "--set", "train.batch_size=0", "--runs-dir", str(tmp_path)]) == 2
    assert "train.batch_size" in one_line_error(capsys)


def test_missing_data_folder_makes_no_run_folder(tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(
        [
            "run",
            "--set",
            "data.source=folder",
            "--set",
            f"data.root={tmp_path / 'x'}",
            "--runs-dir",
            str(runs),
        ]
    )
    assert code == 2
    assert "data.root: folder not found" in one_line_error(capsys)
    assert not runs.exists() or not any(runs.iterdir())


def test_evaluate_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "not a seglab run folder" in one_line_error(capsys)


def test_unknown_command_is_bad_input(capsys):
    assert main(["frobnicate"]) == 2


def test_internal_failure_exits_1(monkeypatch, tmp_path, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr("seglab.pipeline.run", broken)
    assert main(["run", "--runs-dir", str(tmp_path)]) == 1
    assert "internal error: RuntimeError: bug" in capsys.readouterr().err


def test_models_lists_the_unet(capsys):
    # all models at 256x256 with timing take minutes on CPU: the cheap form of the command
    assert main(["models", "--only", "unet", "--size", "32", "--no-timing"]) == 0
    assert "unet" in capsys.readouterr().out


def test_run_end_to_end_twice_makes_two_complete_folders(tmp_path, tiny_overrides, capsys):
    args = ["run", "--runs-dir", str(tmp_path)]
    for override in tiny_overrides:
        args += ["--set", override]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "test IoU" in first
    assert main(args) == 0
    runs = sorted(tmp_path.iterdir())
    assert len(runs) == 2
    for run in runs:
        for name in RUN_FILES:
            assert (run / name).is_file(), name
        assert not [p for p in run.rglob("*") if ".tmp-" in p.name]
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["split"] == "test" and 0.0 <= metrics["dataset"]["iou"] <= 1.0
        assert set(metrics["per_image_mean"]) >= {"iou", "dice", "precision", "recall"}
        env = json.loads((run / "environment.json").read_text())
        assert env["seglab"] == __version__ and env["torch"]
        model_meta = json.loads((run / "model" / "model.json").read_text())
        assert model_meta["model"]["name"] == "unet" and model_meta["normalization"]["mean"]
        split = json.loads((run / "split.json").read_text())
        assert not set(split["train"]) & set(split["test"])
        assert len(read_csv(run / "per_image.csv")) == len(split["test"])
        assert json.loads((run / "train_summary.json").read_text())["precision"] == "32"
    # same seed, same data: both runs train and score identically on CPU
    m0, m1 = (json.loads((r / "metrics.json").read_text()) for r in runs)
    assert m0 == m1

    # evaluate again: same numbers, metrics rewritten in place
    assert main(["evaluate", str(runs[0])]) == 0
    assert json.loads((runs[0] / "metrics.json").read_text()) == m0


def test_console_command_is_installed():
    out = subprocess.run(
        [sys.executable, "-m", "seglab", "--version"], capture_output=True, text=True, check=True
    )
    assert __version__ in out.stdout


@pytest.mark.slow
def test_default_run_learns_the_synthetic_task(tmp_path, capsys):
    """The built-in default itself: reaches test IoU > 0.7 (this is the README's promise)."""
    assert main(["run", "--runs-dir", str(tmp_path), "--set", "train.progress=false"]) == 0
    (run,) = tmp_path.iterdir()
    assert json.loads((run / "metrics.json").read_text())["dataset"]["iou"] > 0.7


def test_console_log_lines_go_to_stdout_as_it_is_when_they_come(monkeypatch):
    import io
    import logging

    from seglab.cli import _setup_console_logging

    _setup_console_logging()
    first, later = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", first)
    logging.getLogger("seglab").info("one")
    assert first.getvalue() == "one\n"
    first.close()  # a stream replaced and closed since (a notebook cell, pytest's capture)
    monkeypatch.setattr("sys.stdout", later)
    logging.getLogger("seglab").info("two")
    assert later.getvalue() == "two\n"
