"""``seglab sweep``: the whole pipeline once per model, each in its own process.

A process per model means no state leaks from one model into the next (random
states, caches, GPU memory) and one model's crash cannot end the sweep. Each
model gets its own run folder inside the sweep folder; ``sweep.csv`` there
gets one row per model (final metrics, parameters, time, peak memory, or why
it failed) and is rewritten after every model.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seglab.config import Config
from seglab.runs import (
    HISTORY_FILE,
    METRICS_FILE,
    atomic_write_csv,
    read_csv,
    read_json,
    run_folder_name,
)

log = logging.getLogger("seglab")
SWEEP_FILE = "sweep.csv"
SWEEP_FIELDS = [
    "model",
    "status",
    "error",
    "run_dir",
    "test_iou",  # dataset-level
    "test_dice",
    "test_image_iou",  # mean per image
    "best_val_iou",
    "best_epoch",
    "epochs_run",
    "stopped_because",
    "parameters",
    "seconds",
    "peak_rss_mb",
    "peak_gpu_mb",
]


@dataclass
class SweepResult:
    folder: Path
    rows: list[dict[str, Any]]


def run_sweep(
    cfg: Config,
    config_path: str | os.PathLike | None,
    models: list[str],
    overrides: list[str],
    runs_root: str | os.PathLike,
) -> SweepResult:
    folder = Path(runs_root) / run_folder_name(f"sweep-{cfg.name}")
    folder.mkdir(parents=True)
    log.info("sweep folder: %s", folder)
    rows: list[dict[str, Any]] = []
    for model in models:
        log.info("sweep: %s (%d of %d)", model, len(rows) + 1, len(models))
        rows.append(_run_one(cfg, config_path, model, overrides, folder))
        atomic_write_csv(folder / SWEEP_FILE, rows, SWEEP_FIELDS)
        row = rows[-1]
        log.info("sweep: %s %s in %.0fs", model, row["status"], row["seconds"])
    return SweepResult(folder, rows)


def _run_one(
    cfg: Config,
    config_path: str | os.PathLike | None,
    model: str,
    overrides: list[str],
    folder: Path,
) -> dict[str, Any]:
    command = [sys.executable, "-m", "seglab", "run"]
    if config_path is not None:
        command.append(str(config_path))
    for override in [*overrides, f"model.name={model}", f"name={cfg.name}-{model}"]:
        command += ["--set", override]
    command += ["--runs-dir", str(folder)]
    before = {p for p in folder.iterdir() if p.is_dir()}
    start = time.perf_counter()
    with open(folder / f"{model}.log", "w", encoding="utf-8") as out:
        rc = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, env=_child_env(), check=False
        ).returncode
    seconds = time.perf_counter() - start
    created = sorted(p for p in folder.iterdir() if p.is_dir() and p not in before)
    run_dir = created[0] if created else None
    row: dict[str, Any] = {
        "model": model,
        "status": "ok" if rc == 0 else f"failed (exit {rc})",
        "error": None if rc == 0 else _last_error(folder / f"{model}.log"),
        "run_dir": run_dir.name if run_dir else None,
        "seconds": round(seconds, 2),
    }
    if run_dir is not None:
        row.update(_run_figures(run_dir))
    return row


def _child_env() -> dict[str, str]:
    """This environment, with seglab's own source importable by the child."""
    env = dict(os.environ)
    source = str(Path(__file__).resolve().parents[1])
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([source, *[p for p in paths if p != source]])
    env.pop("SEGLAB_RUN_DIR", None)
    return env


def _last_error(log_path: Path) -> str:
    lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("error:", "internal error:"))]
    return (errors or lines or ["no output"])[-1][:300]


def _run_figures(run_dir: Path) -> dict[str, Any]:
    row: dict[str, Any] = {}
    if (run_dir / METRICS_FILE).is_file():
        metrics = read_json(run_dir / METRICS_FILE)
        row["test_iou"] = metrics.get("dataset", {}).get("iou")
        row["test_dice"] = metrics.get("dataset", {}).get("dice")
        row["test_image_iou"] = metrics.get("per_image_mean", {}).get("iou")
    if (run_dir / "train_summary.json").is_file():
        summary = read_json(run_dir / "train_summary.json")
        for key in ("best_val_iou", "best_epoch", "epochs_run", "stopped_because"):
            row[key] = summary.get(key)
    if (run_dir / HISTORY_FILE).is_file():
        history = read_csv(run_dir / HISTORY_FILE)
        for key, column in (("peak_rss_mb", "rss_mb"), ("peak_gpu_mb", "peak_gpu_mb")):
            values = [float(r[column]) for r in history if r.get(column)]
            row[key] = max(values) if values else None
    weights = run_dir / "model" / "model.safetensors"
    if weights.is_file():
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as fh:
            row["parameters"] = sum(_numel(fh, k) for k in fh.keys())
    return row


def _numel(handle: Any, key: str) -> int:
    n = 1
    for d in handle.get_slice(key).get_shape():
        n *= int(d)
    return n
