"""The run report: a self-contained, escaped HTML page that tolerates missing files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from seglab import runs
from seglab.report import plots, run_report
from seglab.report.run_report import Overlay, build_run_report
from seglab.runs import (
    CONFIG_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    REPORT_FILE,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_yaml,
)

HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "val_iou", "val_dice", "lr", "seconds"]


def _config() -> dict:
    return {
        "name": "tiny",
        "seed": 0,
        "data": {"source": "synthetic", "patch_size": 64},
        "model": {"name": "unet"},
        "optim": {"lr": 0.001},
        "train": {"epochs": 3, "batch_size": 4},
    }


def _history() -> list[dict]:
    return [
        {
            "epoch": 1,
            "train_loss": 0.9,
            "val_loss": 0.8,
            "val_iou": 0.41,
            "val_dice": 0.58,
            "lr": 1e-3,
            "seconds": 2.0,
        },
        {
            "epoch": 2,
            "train_loss": 0.6,
            "val_loss": 0.5,
            "val_iou": 0.6543,
            "val_dice": 0.79,
            "lr": 5e-4,
            "seconds": 2.5,
        },
        {
            "epoch": 3,
            "train_loss": 0.5,
            "val_loss": None,
            "val_iou": None,
            "val_dice": None,
            "lr": 1e-4,
            "seconds": 2.0,
        },
    ]


def _metrics() -> dict:
    pooled = {"iou": 0.7123, "dice": 0.8321, "precision": 0.9, "recall": 0.8, "accuracy": 0.97}
    per_image = {
        "iou": 0.6987,
        "dice": 0.8111,
        "precision": 0.88,
        "recall": 0.79,
        "accuracy": 0.96,
        "hd95": 3.5,
    }
    return {
        "split": "test",
        "n_images": 5,
        "threshold": 0.5,
        "dataset": pooled,
        "per_image_mean": per_image,
        "extra_key": {"nested": [1, 2]},
    }


def _overlay(name: str = "img_01.png", iou: float | None = 0.5) -> Overlay:
    rng = np.random.default_rng(0)
    truth = np.zeros((16, 16), dtype=np.int64)
    truth[4:12, 4:12] = 1
    truth[0, 0] = 255
    pred = np.zeros_like(truth)
    pred[6:14, 6:14] = 1
    return Overlay(name=name, image=rng.random((16, 16)), truth=truth, pred=pred, iou=iou)


@pytest.fixture
def full_run(tmp_path: Path) -> Path:
    run = tmp_path / "20240101-000000_tiny_abc123"
    atomic_write_yaml(run / CONFIG_FILE, _config())
    atomic_write_json(run / "environment.json", {"python": "3.11.0", "device": "cpu"})
    atomic_write_csv(run / HISTORY_FILE, _history(), HISTORY_COLUMNS)
    atomic_write_json(run / METRICS_FILE, _metrics())
    atomic_write_json(
        run / "train_summary.json",
        {"stopped_because": "max_epochs", "best_epoch": 2, "epochs_run": 3, "seconds": 6.5},
    )
    return run


def test_full_run_renders_metrics_curves_and_is_self_contained(
    full_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[Path] = []

    def recording_write(path: Path, text: str) -> Path:
        written.append(Path(path))
        return runs.atomic_write_text(path, text)

    monkeypatch.setattr(run_report, "atomic_write_text", recording_write)
    path = build_run_report(full_run, [_overlay()])
    assert path == full_run / REPORT_FILE
    assert written == [path]  # through the atomic writer, and nothing left behind below
    html = path.read_text(encoding="utf-8")
    for value in ("0.7123", "0.6987", "0.8321", "0.8111", "3.5000", "0.654", "max_epochs"):
        assert value in html
    assert "dataset-level (pixels pooled)" in html and "mean per image" in html
    assert "unet" in html and "synthetic" in html
    assert html.count("data:image/png;base64,") >= 4  # curves + 3 overlay panels
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"<(script|link)\b", html)
    assert 'name="viewport"' in html
    assert sorted(p.name for p in full_run.iterdir() if p.name.startswith(".")) == []
    assert "Test metrics are missing" not in html


def test_training_warnings_are_in_the_report(full_run: Path) -> None:
    warning = "predictions constant for 3 epochs <check the loss>"
    summary = {"stopped_because": "max_epochs", "epochs_run": 3, "warnings": [warning]}
    atomic_write_json(full_run / "train_summary.json", summary)
    html = build_run_report(full_run).read_text(encoding="utf-8")
    assert "training warning" in html
    assert "predictions constant for 3 epochs &lt;check the loss&gt;" in html


def test_the_kept_weights_epoch_shows_where_it_is_not_the_best(full_run: Path) -> None:
    html = build_run_report(full_run).read_text(encoding="utf-8")
    assert "epoch of the kept weights" not in html  # the best epoch's weights were kept
    summary = {"best_epoch": 2, "kept": "last", "kept_epoch": 3, "epochs_run": 3}
    atomic_write_json(full_run / "train_summary.json", summary)
    html = build_run_report(full_run).read_text(encoding="utf-8")
    assert re.search(r"epoch of the kept weights.{0,80}\b3\b", html, re.S)


def test_missing_metrics_and_empty_history_still_render(tmp_path: Path) -> None:
    run = tmp_path / "run"
    atomic_write_yaml(run / CONFIG_FILE, {"name": "train-only", "model": {}})
    atomic_write_csv(run / HISTORY_FILE, [], HISTORY_COLUMNS)
    html = build_run_report(run).read_text(encoding="utf-8")
    assert "Test metrics are missing" in html
    assert "metrics.json not found" in html
    assert "holds no epochs" in html
    assert "environment.json not found" in html
    assert "data:image/png" not in html


def test_unreadable_files_are_reported_not_raised(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / METRICS_FILE).write_text("{not json", encoding="utf-8")
    (run / CONFIG_FILE).write_text("a: [unclosed", encoding="utf-8")
    html = build_run_report(run).read_text(encoding="utf-8")
    assert "metrics.json could not be read" in html
    assert "config.yaml is not valid YAML" in html


def test_names_and_config_strings_are_escaped(full_run: Path) -> None:
    atomic_write_yaml(full_run / CONFIG_FILE, {**_config(), "name": "<b>bold</b>"})
    html = build_run_report(full_run, [_overlay("<script>alert(1)</script>.png", None)]).read_text(
        encoding="utf-8"
    )
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.png" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "IoU n/a" in html


def test_error_colors_mark_tp_fp_fn_and_ignore() -> None:
    truth = np.array([[1, 1, 0, 0, 255]])
    pred = np.array([[1, 0, 1, 0, 1]])
    rgb, coloured = plots.error_colors(truth, pred)
    assert rgb.shape == (1, 5, 3)
    assert tuple(rgb[0, 0]) == plots.TP_COLOR
    assert tuple(rgb[0, 1]) == plots.FN_COLOR
    assert tuple(rgb[0, 2]) == plots.FP_COLOR
    assert tuple(rgb[0, 3]) == (0.0, 0.0, 0.0) and not coloured[0, 3]
    assert tuple(rgb[0, 4]) == plots.IGNORE_COLOR
    assert coloured.tolist() == [[True, True, True, False, True]]


def test_prediction_overlay_tints_only_coloured_pixels() -> None:
    image = np.full((1, 3), 0.5)
    out = plots.prediction_overlay(image, np.array([[1, 0, 0]]), np.array([[1, 1, 0]]))
    assert out.shape == (1, 3, 3)
    assert np.argmax(out[0, 0]) == 1  # true positive: green dominates
    assert np.argmax(out[0, 1]) == 0  # false positive: red dominates
    np.testing.assert_allclose(out[0, 2], [0.5, 0.5, 0.5])  # true negative: untouched


def test_report_module_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, seglab.report.run_report; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
