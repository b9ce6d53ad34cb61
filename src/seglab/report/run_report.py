"""The report of one run: a self-contained ``report.html`` in the run folder.

Everything the report shows comes from the run folder (config, environment, history,
metrics, train summary) plus optional prediction overlays. Any file may be missing or
unreadable; the report then says so instead of failing. No torch here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import yaml

from seglab.errors import SeglabError
from seglab.report import plots, sections
from seglab.report.run_facts import run_facts
from seglab.runs import (
    CONFIG_FILE,
    ENVIRONMENT_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    REPORT_FILE,
    atomic_write_text,
    read_csv,
    read_json,
)

TRAIN_SUMMARY_FILE = "train_summary.json"
METRIC_KEYS = ("iou", "dice", "precision", "recall", "accuracy")
_TEMPLATES = Path(__file__).resolve().parent / "templates"
# (label, dotted keys tried in order) for the config summary table
_CONFIG_SUMMARY = (
    ("model", ("model.name",)),
    ("data source", ("data.source", "data.root", "data.path", "data.name")),
    ("epochs", ("train.epochs", "train.max_epochs")),
    ("batch size", ("train.batch_size", "data.batch_size")),
    ("learning rate", ("optim.lr", "optim.learning_rate")),
    ("patch size", ("data.patch_size", "train.patch_size")),
    ("seed", ("seed",)),
)
_LEGEND = (
    ("true positive", plots.TP_COLOR),
    ("false positive", plots.FP_COLOR),
    ("false negative", plots.FN_COLOR),
    ("wrong class", plots.WRONG_CLASS_COLOR),
    ("ignored", plots.IGNORE_COLOR),
)


@dataclass
class Overlay:
    """One test image for the report: image (H,W) or (H,W,3) in [0,1], class maps (H,W)."""

    name: str
    image: np.ndarray
    truth: np.ndarray
    pred: np.ndarray
    iou: float | None = None


def build_run_report(
    run_dir: str | Path,
    overlays: list[Overlay] | None = None,
    profile: dict[str, Any] | None = None,
) -> Path:
    """Write ``report.html`` into ``run_dir`` (atomically) and return its path.

    ``profile`` (``parameters``, ``macs``, ``input``) adds the model's size and cost.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SeglabError(f"run folder not found: {run_dir}", hint="pass a folder made by seglab")
    summary, summary_problem = {}, None  # the train summary is optional: absent is fine
    if (run_dir / TRAIN_SUMMARY_FILE).is_file():
        summary, summary_problem = _load(run_dir / TRAIN_SUMMARY_FILE, read_json)
        summary = summary if isinstance(summary, dict) else {}
    html = (
        _environment()
        .get_template("run.html.j2")
        .render(
            run_name=run_dir.name,
            generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            config=_config_section(run_dir),
            environment=_environment_section(run_dir),
            training=_training_section(run_dir, summary, summary_problem, profile),
            data=sections.data_summary_section(run_dir),
            compression=sections.compression_section(run_dir),
            metrics=_metrics_section(run_dir),
            overlays=[_overlay_row(o) for o in overlays or []],
            legend=[(label, plots.hex_color(c)) for label, c in _LEGEND],
        )
    )
    return atomic_write_text(run_dir / REPORT_FILE, html)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


# --------------------------------------------------------------------------- reading


def _load(path: Path, reader: Callable[[Path], Any]) -> tuple[Any, str | None]:
    """(content, None), or (None, a sentence saying why there is no content)."""
    if not path.is_file():
        return None, f"{path.name} not found"
    try:
        return reader(path), None
    except (OSError, ValueError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return None, f"{path.name} could not be read: {exc}"


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _lookup(cfg: dict[str, Any], dotted: str) -> Any:
    value: Any = cfg
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _show(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def _number(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {sec:02d} s"


# --------------------------------------------------------------------------- sections


def _config_section(run_dir: Path) -> dict[str, Any]:
    text, problem = _load(run_dir / CONFIG_FILE, _read_text)
    cfg: Any = None
    if text is not None:
        try:
            cfg = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            problem = f"{CONFIG_FILE} is not valid YAML: {exc}"
    cfg = cfg if isinstance(cfg, dict) else {}
    rows = []
    for label, keys in _CONFIG_SUMMARY:
        value = next((v for k in keys if (v := _lookup(cfg, k)) is not None), None)
        rows.append((label, _show(value)))
    return {"problem": problem, "text": text, "rows": rows, "name": _show(cfg.get("name"))}


def _environment_section(run_dir: Path) -> dict[str, Any]:
    env, problem = _load(run_dir / ENVIRONMENT_FILE, read_json)
    if env is not None and not isinstance(env, dict):
        env, problem = None, f"{ENVIRONMENT_FILE} does not hold a JSON object"
    return {"problem": problem, "rows": [(k, _show(v)) for k, v in (env or {}).items()]}


def _training_section(
    run_dir: Path,
    summary: dict[str, Any],
    summary_problem: str | None,
    profile: dict[str, Any] | None = None,
) -> dict[str, Any]:
    rows, problem = _load(run_dir / HISTORY_FILE, read_csv)
    rows = rows or []
    if not rows and problem is None:
        problem = f"{HISTORY_FILE} holds no epochs"
    columns = ("train_loss", "val_loss", "val_iou", "val_dice", "lr", "seconds")
    series = {c: np.array([_number(r.get(c)) for r in rows]) for c in columns}
    epochs = np.array([_number(r.get("epoch")) for r in rows])
    if not np.isfinite(epochs).all():
        epochs = np.arange(len(rows), dtype=np.float64)
    best = None
    if np.isfinite(series["val_iou"]).any():
        best = int(np.nanargmax(series["val_iou"]))
    best_epoch = float(epochs[best]) if best is not None else None
    seconds = _number(summary.get("seconds"))
    if not math.isfinite(seconds) and np.isfinite(series["seconds"]).any():
        seconds = float(np.nansum(series["seconds"]))  # history holds seconds per epoch
    # the kept weights' epoch: another train.checkpoint.monitor, or keep: last
    kept = summary.get("kept_epoch", summary.get("best_epoch"))
    stats = [
        ("best epoch (max val IoU)", _show(best_epoch if best_epoch is not None else kept)),
        ("best val IoU", _show(float(series["val_iou"][best]) if best is not None else None)),
        ("epochs run", _show(summary.get("epochs_run", len(rows) or None))),
        ("training time", _duration(seconds)),
    ]
    if summary.get("precision"):
        stats.append(("precision", _show(summary["precision"])))
    if kept is not None and best_epoch is not None and _number(kept) != best_epoch:
        stats.append(("epoch of the kept weights", _show(kept)))
    members = summary.get("ensemble_epochs")
    if isinstance(members, list) and members:  # train.checkpoint.ensemble
        stats.append(("kept: mean prediction of epochs", ", ".join(map(str, members))))
    if summary.get("stopped_because"):
        stats.append(("stopped because", _show(summary["stopped_because"])))
    warned = summary.get("warnings")
    for text in warned if isinstance(warned, list) else []:  # collapse, emulated bf16, ...
        stats.append(("training warning", _show(text)))
    stats += sections.facts_rows(run_facts(run_dir, profile))
    gap = sections.loss_gap(rows, best_epoch)
    if gap is not None:
        stats.append(("val loss − train loss at the best epoch", gap))
    curves = plots.learning_curves(epochs, series, best_epoch) if rows else None
    return {
        "problem": problem,
        "summary_problem": summary_problem,
        "stats": stats,
        "curves": curves,
    }


def _metrics_section(run_dir: Path) -> dict[str, Any]:
    metrics, problem = _load(run_dir / METRICS_FILE, read_json)
    if metrics is not None and not isinstance(metrics, dict):
        metrics, problem = None, f"{METRICS_FILE} does not hold a JSON object"
    if metrics is None:
        return {"problem": problem, "rows": [], "meta": [], "has_ci": False, "confusion": []}
    pooled = metrics.get("dataset") if isinstance(metrics.get("dataset"), dict) else {}
    mean = metrics.get("per_image_mean")
    mean = mean if isinstance(mean, dict) else {}
    extra = sorted(k for k in {**pooled, **mean} if k not in METRIC_KEYS)
    keys = [k for k in (*METRIC_KEYS, *extra) if _scalar(pooled.get(k)) or _scalar(mean.get(k))]
    ci = metrics.get("ci95") if isinstance(metrics.get("ci95"), dict) else {}
    ci_pooled, ci_mean = (ci.get(p) if isinstance(ci.get(p), dict) else {} for p in (
        "dataset", "per_image_mean"))  # fmt: skip
    rows = [
        (
            k,
            _show_metric(pooled.get(k)),
            _show_interval(ci_pooled.get(k)),
            _show_metric(mean.get(k)),
            _show_interval(ci_mean.get(k)),
        )
        for k in keys
    ]
    meta_keys = ("split", "n_images", "threshold", "tta", "postprocessing", "ensemble")
    meta = [(k, _show(metrics.get(k))) for k in meta_keys if k in metrics]
    return {
        "problem": None,
        "rows": rows,
        "meta": meta,
        "has_ci": bool(ci_pooled or ci_mean),
        "confusion": _confusion_rows(metrics.get("confusion_matrix")),
    }


def _confusion_rows(matrix: Any) -> list[list[str]]:
    """Rows of a multi-class confusion matrix (true class x predicted class), if well formed."""
    counts = matrix.get("counts") if isinstance(matrix, dict) else None
    if not isinstance(counts, list) or not all(isinstance(r, list) for r in counts):
        return []
    if not all(len(r) == len(counts) and all(map(_scalar, r)) for r in counts):
        return []
    return [[f"{int(v):,}" for v in row] for row in counts]


def _show_interval(value: Any) -> str:
    """``[lo, hi]`` as text; anything else (missing, malformed) as a dash."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(map(_scalar, value)):
        if all(math.isfinite(v) for v in value):
            return f"{value[0]:.4f}–{value[1]:.4f}"
    return "—"


def _scalar(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show_metric(value: Any) -> str:
    return f"{value:.4f}" if _scalar(value) and math.isfinite(value) else "—"


def _overlay_row(overlay: Overlay) -> dict[str, Any]:
    image = plots.shrink(plots.as_rgb(overlay.image))
    truth = plots.shrink(np.asarray(overlay.truth))
    pred = plots.shrink(np.asarray(overlay.pred))
    if image.shape[:2] != truth.shape:
        raise ValueError(f"overlay {overlay.name!r}: image and truth sizes differ")
    iou = overlay.iou
    return {
        "name": overlay.name,
        "iou": f"{iou:.3f}" if iou is not None and math.isfinite(iou) else "n/a",
        "image": plots.rgb_to_data_uri(image),
        "truth": plots.rgb_to_data_uri(plots.mask_rgb(truth)),
        "pred": plots.rgb_to_data_uri(plots.prediction_overlay(image, truth, pred)),
    }
