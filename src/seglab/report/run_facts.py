"""The numbers a paper quotes about one run, read from its folder (no torch here).

:func:`run_facts` gathers what the run report, ``comparison.csv`` and
``performance_summary.csv`` share: model size, training time and memory, best
epoch and why training stopped, stability of the monitored metric over the last
epochs, the generalisation gap, and the test metrics with their 95% intervals.
Every value is measured by seglab and read from the run folder; a value the
folder does not hold is ``None`` (shown as a dash, written as an empty cell).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from seglab.runs import CONFIG_FILE, HISTORY_FILE, METRICS_FILE, read_csv, read_json

TRAIN_SUMMARY_FILE = "train_summary.json"
STABILITY_EPOCHS = 5  # K: the last K epochs of the monitored metric
TEST_METRICS = ("iou", "dice", "precision", "recall")
# the columns of comparison.csv and performance_summary.csv, in order
SUMMARY_COLUMNS = (
    "run",
    "model",
    "parameters",
    "gmacs",
    "macs_input",
    "train_seconds",
    "seconds_per_epoch",
    "peak_memory_mb",
    "peak_memory_kind",
    "epochs_run",
    "best_epoch",
    "stopped_because",
    "monitor",
    "stability_std",
    "stability_epochs",
    "train_iou",
    "val_iou",
    "gap_iou",
    "n_test_images",
    *(f"test_{m}{s}" for m in TEST_METRICS for s in ("", "_ci_low", "_ci_high")),
)


def read_optional(path: Path) -> Any:
    """The content of a JSON, YAML or CSV file, or None when absent or unreadable."""
    if not path.is_file():
        return None
    try:
        if path.suffix == ".json":
            return read_json(path)
        if path.suffix == ".csv":
            return read_csv(path)
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, yaml.YAMLError):
        return None


def number(value: Any) -> float | None:
    """A finite float, or None (empty CSV cells, text, NaN)."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def lookup(tree: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


def run_facts(run_dir: str | Path, profile: dict[str, Any] | None = None) -> dict[str, Any]:
    """One row of :data:`SUMMARY_COLUMNS` for ``run_dir``.

    ``profile`` holds ``parameters``, ``macs`` and ``size`` when the caller measured
    the model (that needs torch); without it those cells stay empty.
    """
    run_dir = Path(run_dir)
    cfg = read_optional(run_dir / CONFIG_FILE)
    cfg = cfg if isinstance(cfg, dict) else {}
    summary = read_optional(run_dir / TRAIN_SUMMARY_FILE)
    summary = summary if isinstance(summary, dict) else {}
    history = read_optional(run_dir / HISTORY_FILE) or []
    metrics = read_optional(run_dir / METRICS_FILE)
    metrics = metrics if isinstance(metrics, dict) else {}
    row: dict[str, Any] = dict.fromkeys(SUMMARY_COLUMNS)
    row["run"] = run_dir.name
    row["model"] = lookup(cfg, "model.name")
    if profile:
        row["parameters"] = profile.get("parameters")
        macs = number(profile.get("macs"))
        row["gmacs"] = None if macs is None else macs / 1e9
        row["macs_input"] = profile.get("input")
    row.update(_timing(summary, history))
    row.update(_memory(history))
    row["epochs_run"] = summary.get("epochs_run", len(history) or None)
    row["best_epoch"] = summary.get("best_epoch")
    row["stopped_because"] = summary.get("stopped_because")  # NaN: names the tensor
    monitor = lookup(cfg, "train.checkpoint.monitor") or "val_iou"
    row["monitor"] = monitor
    row["stability_std"], row["stability_epochs"] = stability(history, monitor)
    row.update(_gap(metrics))
    row["n_test_images"] = metrics.get("n_images")
    dataset = metrics.get("dataset") if isinstance(metrics.get("dataset"), dict) else {}
    intervals = lookup(metrics, "ci95.dataset") or {}
    for name in TEST_METRICS:
        row[f"test_{name}"] = number(dataset.get(name))
        interval = intervals.get(name) if isinstance(intervals, dict) else None
        if isinstance(interval, list) and len(interval) == 2:
            row[f"test_{name}_ci_low"] = number(interval[0])
            row[f"test_{name}_ci_high"] = number(interval[1])
    return row


def stability(history: list[dict[str, Any]], monitor: str) -> tuple[float | None, int | None]:
    """Sample standard deviation of ``monitor`` over the last K epochs that have it."""
    values = [v for r in history if (v := number(r.get(monitor))) is not None]
    last = values[-STABILITY_EPOCHS:]
    if len(last) < 2:
        return None, len(last) or None
    return float(np.std(last, ddof=1)), len(last)


def _timing(summary: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    per_epoch = [v for r in history if (v := number(r.get("seconds"))) is not None]
    total = number(summary.get("seconds"))
    if total is None and per_epoch:
        total = float(sum(per_epoch))
    return {
        "train_seconds": total,
        "seconds_per_epoch": float(np.mean(per_epoch)) if per_epoch else None,
    }


def _memory(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The peak GPU memory over epochs when a GPU was used, else the peak process RSS."""
    for column, kind in (("peak_gpu_mb", "GPU"), ("rss_mb", "process RSS")):
        values = [v for r in history if (v := number(r.get(column))) is not None]
        if values:
            return {"peak_memory_mb": max(values), "peak_memory_kind": kind}
    return {"peak_memory_mb": None, "peak_memory_kind": None}


def _gap(metrics: dict[str, Any]) -> dict[str, Any]:
    """Train and val IoU (dataset-level) of the kept weights, and train minus val."""
    train = number(lookup(metrics, "fit_splits.train.dataset.iou"))
    val = number(lookup(metrics, "fit_splits.val.dataset.iou"))
    gap = train - val if train is not None and val is not None else None
    return {"train_iou": train, "val_iou": val, "gap_iou": gap}


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: floats rounded to 6 significant digits, None empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value
