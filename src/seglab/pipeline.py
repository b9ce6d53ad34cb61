"""The pipeline: run = check data -> train -> evaluate -> report.

Each step reads and writes the run folder, so a step can also be run alone
(``seglab train``, ``seglab evaluate RUN``).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seglab import __version__
from seglab.config import Config, load_config
from seglab.data.check import DataCheck, check_data
from seglab.data.prepare import PreparedData, prepare_data
from seglab.engine.fit import RUN_DIR_ENV, fit
from seglab.errors import SeglabError
from seglab.inference.evaluate import Evaluation, evaluate_samples
from seglab.models.io import load_model_folder, save_model_folder
from seglab.report.data_check import write_data_check
from seglab.report.run_report import Overlay, build_run_report
from seglab.runs import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    ENVIRONMENT_FILE,
    LOG_FILE,
    METRICS_FILE,
    SPLIT_FILE,
    Run,
    describe_environment,
)

log = logging.getLogger("seglab")
TRAIN_SUMMARY_FILE = "train_summary.json"
PER_IMAGE_FILE = "per_image.csv"


@dataclass
class RunResult:
    run: Run
    metrics: dict[str, Any] | None


def run(cfg: Config, runs_root: str | os.PathLike = "runs") -> RunResult:
    """The whole pipeline on a new run folder."""
    result = train(cfg, runs_root)
    return RunResult(result.run, evaluate_run(result.run.path).metrics)


def train(cfg: Config, runs_root: str | os.PathLike = "runs") -> RunResult:
    """Check the data, then train into a new run folder (no test evaluation).

    Inside a process started by a DDP launcher, or when ``SEGLAB_RUN_DIR`` is
    set, the run folder is that one (created by rank 0, shared by all ranks).
    """
    check = check_data_or_stop(cfg) if cfg.data.check_before_run else None
    data = prepare_data(cfg)  # bad data fails here, before a run folder exists
    shared = os.environ.get(RUN_DIR_ENV)
    if shared and _launched_rank() > 0:
        _wait_for(Path(shared, CONFIG_FILE))  # rank 0 creates the folder
    if shared and Path(shared, CONFIG_FILE).is_file():
        run_dir = Run.open(shared)
        attach_log_file(run_dir)
        return _fit_and_save(cfg, run_dir, data, resume=True)  # from its checkpoint, if any
    run_dir = start_run(cfg, runs_root, Path(shared) if shared else None)
    if check is not None:
        write_data_check(check, run_dir.path, cfg.name)
    run_dir.write_json(SPLIT_FILE, data.split)
    log.info(
        "data: %d train, %d val, %d test images", len(data.train), len(data.val), len(data.test)
    )
    return _fit_and_save(cfg, run_dir, data, resume=False)


def _launched_rank() -> int:
    """The global rank a launcher (torchrun, SLURM, Lightning) gave this process; 0 if none."""
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


def _wait_for(path: Path, seconds: float = 300.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.is_file():
        if time.monotonic() > deadline:
            raise SeglabError(f"{path} did not appear", hint="rank 0 failed to start the run")
        time.sleep(0.5)


def resume(run_path: str | os.PathLike) -> RunResult:
    """Continue an interrupted or time-limited run in its own folder, from its last checkpoint."""
    run_dir = Run.open(run_path)
    attach_log_file(run_dir)
    cfg = load_config(run_dir.file(CONFIG_FILE))
    split = run_dir.read_json(SPLIT_FILE) if run_dir.has(SPLIT_FILE) else None
    data = prepare_data(cfg, split)
    log.info("resuming %s", run_dir.path)
    return _fit_and_save(cfg, run_dir, data, resume=True)


def _fit_and_save(cfg: Config, run_dir: Run, data: PreparedData, resume: bool) -> RunResult:
    result = fit(cfg, run_dir, data, resume=resume)
    if not result.is_global_zero:
        return RunResult(run_dir, None)
    save_model_folder(run_dir.model_dir, result.model, model_meta(cfg, data, run_dir))
    summary = {
        "stopped_because": result.stopped_because,
        "completed": result.completed,
        "best_epoch": result.best_epoch,
        "best_val_iou": result.best_val_iou,
        "epochs_run": result.epochs_run,
        "seconds": round(result.seconds, 2),
    }
    if run_dir.has(TRAIN_SUMMARY_FILE):  # a resumed run: time adds up over sessions
        before = run_dir.read_json(TRAIN_SUMMARY_FILE)
        summary["seconds"] = round(summary["seconds"] + (before.get("seconds") or 0), 2)
        summary["sessions"] = int(before.get("sessions", 1)) + 1
    if result.diagnosis:
        summary["diagnosis"] = result.diagnosis
    if result.warnings:
        summary["warnings"] = result.warnings
    run_dir.write_json(TRAIN_SUMMARY_FILE, summary)
    build_run_report(run_dir.path)
    log.info(
        "trained %d epochs in %.0fs; best val IoU %s at epoch %s%s",
        result.epochs_run,
        result.seconds,
        _fmt(result.best_val_iou),
        result.best_epoch,
        "" if result.completed else f"; cut short: {result.stopped_because}",
    )
    return RunResult(run_dir, None)


def evaluate_run(run_path: str | os.PathLike) -> RunResult:
    """Test-split metrics of a trained run, written to metrics.json and the report."""
    run_dir = Run.open(run_path)
    attach_log_file(run_dir)
    cfg = load_config(run_dir.file(CONFIG_FILE))
    model, meta = load_model_folder(run_dir.model_dir)
    split = run_dir.read_json(SPLIT_FILE) if run_dir.has(SPLIT_FILE) else None
    data = prepare_data(cfg, split)
    evaluation = evaluate_samples(
        model,
        data.test,
        meta["normalization"],
        cfg.model.num_classes,
        meta["threshold"],
        cfg.data.ignore_index,
    )
    run_dir.write_json(METRICS_FILE, evaluation.metrics)
    run_dir.write_csv(PER_IMAGE_FILE, evaluation.per_image, list(evaluation.per_image[0]))
    build_run_report(run_dir.path, overlays(data, evaluation, cfg.eval.n_overlays))
    d = evaluation.metrics["dataset"]
    log.info(
        "test (%d images): IoU %s  Dice %s  precision %s  recall %s",
        evaluation.metrics["n_images"],
        _fmt(d["iou"]),
        _fmt(d["dice"]),
        _fmt(d["precision"]),
        _fmt(d["recall"]),
    )
    return RunResult(run_dir, evaluation.metrics)


def check_data_or_stop(cfg: Config) -> DataCheck:
    """The data check; a SeglabError naming the first problem when it finds errors."""
    check = check_data(cfg)
    if check.errors:
        first = check.errors[0]
        raise SeglabError(
            f"data check: {len(check.errors)} error(s); first: {first.file}: {first.problem}",
            hint="`seglab check-data CONFIG` writes the full report (data_check.html)",
        )
    for issue in check.warnings[:3]:
        log.info("data check warning: %s: %s", issue.file, issue.problem)
    if len(check.warnings) > 3:
        log.info("data check: %d more warning(s) in data_check.html", len(check.warnings) - 3)
    return check


def check_data_report(
    cfg: Config, out_dir: str | os.PathLike, match_model: bool = True
) -> tuple[DataCheck, Path]:
    """``seglab check-data``: check the data and write data_check.json + .html to ``out_dir``."""
    check = check_data(cfg, match_model=match_model)
    return check, write_data_check(check, out_dir, cfg.data.root or cfg.name)


def start_run(cfg: Config, runs_root: str | os.PathLike, at: Path | None = None) -> Run:
    """A new run folder under ``runs_root`` (or exactly ``at``), with config and environment."""
    if at is not None:
        if at.exists() and any(at.iterdir()):
            raise SeglabError(
                f"{RUN_DIR_ENV}={at} exists and is not a seglab run folder",
                hint="point it at a new folder or at a run folder to continue",
            )
        (at / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
        run_dir = Run(at)
    else:
        run_dir = Run.create(runs_root, cfg.name)
    run_dir.write_text(CONFIG_FILE, cfg.to_yaml())
    run_dir.write_json(ENVIRONMENT_FILE, describe_environment(_device_name(cfg)))
    attach_log_file(run_dir)
    log.info("run folder: %s", run_dir.path)
    return run_dir


def model_meta(cfg: Config, data: PreparedData, run_dir: Run) -> dict[str, Any]:
    return {
        "model": cfg.model.model_dump(mode="json"),
        "normalization": data.normalization,
        "threshold": cfg.eval.threshold,
        "num_classes": cfg.model.num_classes,
        "in_channels": cfg.model.in_channels,
        "trained_in": run_dir.name,
        "seglab_version": __version__,
    }


def overlays(data: PreparedData, evaluation: Evaluation, n: int) -> list[Overlay]:
    """The worst and best test images by IoU (half each), for the report."""
    scored = sorted(evaluation.per_image, key=lambda r: _sort_key(r["iou"]))
    picked = scored[: (n + 1) // 2] + scored[::-1][: n // 2]
    by_name = {s.name: s for s in data.test}
    seen, result = set(), []
    for row in picked:
        if row["name"] in seen:
            continue
        seen.add(row["name"])
        s = by_name[row["name"]]
        image = s.image[0] if s.channels == 1 else np.moveaxis(s.image[:3], 0, -1)
        result.append(Overlay(s.name, image, s.mask, evaluation.predictions[s.name], row["iou"]))
    return result


def attach_log_file(run_dir: Run) -> None:
    """Send seglab's and Lightning's log lines to the run's train.log as well."""
    path = str(run_dir.file(LOG_FILE))
    for name in ("seglab", "lightning.pytorch"):
        logger = logging.getLogger(name)
        if any(getattr(h, "baseFilename", None) == path for h in logger.handlers):
            continue
        for old in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
            logger.removeHandler(old)
            old.close()
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _device_name(cfg: Config) -> str:
    import torch

    if cfg.train.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return "cpu"


def _sort_key(value: float) -> float:
    return value if value == value else float("inf")  # NaN (nothing to find) sorts as best


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.4f}"


def config_path_of(run_path: str | os.PathLike) -> Path:
    return Path(run_path) / CONFIG_FILE
