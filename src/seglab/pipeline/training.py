"""``seglab run`` and ``seglab train``: check the data, train into a run folder, resume one."""

from __future__ import annotations

import os
import time
from pathlib import Path

from seglab.config import Config, load_config
from seglab.data.prepare import PreparedData, prepare_data
from seglab.errors import SeglabError
from seglab.models.io import save_model_folder
from seglab.pipeline.common import (
    TRAIN_SUMMARY_FILE,
    RunResult,
    attach_log_file,
    check_data_or_stop,
    fmt,
    log,
    model_meta,
    start_run,
)
from seglab.pipeline.evaluation import evaluate_run
from seglab.report.data_check import write_data_check
from seglab.report.run_report import build_run_report
from seglab.runs import CONFIG_FILE, RUN_DIR_ENV, SPLIT_FILE, Run


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
    from seglab.engine.fit import fit  # Lightning loads slowly: only when training

    result = fit(cfg, run_dir, data, resume=resume)
    if not result.is_global_zero:
        return RunResult(run_dir, None)
    meta = model_meta(cfg, data, run_dir)
    if result.ensemble_epochs:
        meta["ensemble"] = {"epochs": result.ensemble_epochs}
    save_model_folder(run_dir.model_dir, result.model, meta)
    summary = {
        "stopped_because": result.stopped_because,
        "completed": result.completed,
        "best_epoch": result.best_epoch,
        "best_val_iou": result.best_val_iou,
        "kept": cfg.train.checkpoint.keep,  # which weights model/ holds
        "kept_epoch": result.kept_epoch,
        "ensemble_epochs": result.ensemble_epochs,  # model/ is their mean (best first), or None
        "epochs_run": result.epochs_run,
        "seconds": round(result.seconds, 2),
        "precision": result.precision,
        "channels_last": result.channels_last,
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
        "trained %d epochs in %.0fs; best val IoU %s at epoch %s%s%s",
        result.epochs_run,
        result.seconds,
        fmt(result.best_val_iou),
        result.best_epoch,
        f"; kept the last epoch's weights ({result.kept_epoch})"
        if cfg.train.checkpoint.keep == "last"
        else f"; kept the mean of epochs {', '.join(map(str, result.ensemble_epochs))}"
        if result.ensemble_epochs
        else "",
        "" if result.completed else f"; cut short: {result.stopped_because}",
    )
    return RunResult(run_dir, None)
