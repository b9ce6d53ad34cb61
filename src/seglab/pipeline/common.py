"""What every pipeline step shares: the run folder, its log file, the model's metadata."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seglab import __version__
from seglab.config import Config
from seglab.data.check import DataCheck, check_data
from seglab.data.prepare import PreparedData
from seglab.errors import SeglabError
from seglab.inference.settings import InferenceSettings
from seglab.models.io import META_FILE
from seglab.report.data_check import write_data_check
from seglab.runs import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    ENVIRONMENT_FILE,
    LOG_FILE,
    MODEL_DIR,
    RUN_DIR_ENV,
    Run,
    describe_environment,
)

log = logging.getLogger("seglab")
TRAIN_SUMMARY_FILE = "train_summary.json"
PER_IMAGE_FILE = "per_image.csv"
EVALUATIONS_DIR = "evaluations"


@dataclass
class RunResult:
    run: Run
    metrics: dict[str, Any] | None


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
    run_dir.write_json(ENVIRONMENT_FILE, describe_environment(device_name(cfg)))
    attach_log_file(run_dir)
    log.info("run folder: %s", run_dir.path)
    return run_dir


def model_meta(cfg: Config, data: PreparedData, run_dir: Run) -> dict[str, Any]:
    return {
        "model": cfg.model.model_dump(mode="json"),
        "normalization": data.normalization,
        "threshold": cfg.eval.threshold,
        "inference": InferenceSettings.from_eval(cfg.eval).to_json(),
        "num_classes": cfg.model.num_classes,
        "in_channels": cfg.model.in_channels,
        "trained_in": run_dir.name,
        "seglab_version": __version__,
    }


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


def model_folder_of(path: str | os.PathLike) -> Path:
    """The model folder of a run folder, or ``path`` itself when it is a model folder."""
    path = Path(path)
    if (path / MODEL_DIR / META_FILE).is_file():
        return path / MODEL_DIR
    if (path / META_FILE).is_file():
        return path
    raise SeglabError(
        f"{path} is neither a run folder with a trained model nor a model folder",
        hint=f"pass a run folder (with {MODEL_DIR}/{META_FILE}) or an exported model folder",
    )


def config_path_of(run_path: str | os.PathLike) -> Path:
    return Path(run_path) / CONFIG_FILE


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


def device_name(cfg: Config) -> str:
    import torch

    if cfg.train.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return f"cuda ({torch.cuda.getdevice_name(0)})"
    return "cpu"


def fmt(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.4f}"
