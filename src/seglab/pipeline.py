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
from seglab.data.readers import load_samples
from seglab.data.samples import Sample
from seglab.errors import SeglabError
from seglab.inference.ensemble import Ensemble
from seglab.inference.evaluate import Evaluation, evaluate_samples, foreground_probabilities
from seglab.inference.files import collect_inputs, read_input, write_prediction
from seglab.inference.predict import Predictor, ProbabilityModel, inference_device
from seglab.inference.settings import InferenceSettings
from seglab.inference.stacks import predict_stack
from seglab.inference.threshold import tune_threshold
from seglab.models.io import META_FILE, load_model_folder, save_model_folder
from seglab.report.data_check import write_data_check
from seglab.report.run_report import Overlay, build_run_report
from seglab.runs import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    ENVIRONMENT_FILE,
    HISTORY_FILE,
    LOG_FILE,
    METRICS_FILE,
    MODEL_DIR,
    RUN_DIR_ENV,
    SPLIT_FILE,
    Run,
    atomic_write_bytes,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    describe_environment,
    run_folder_name,
)

log = logging.getLogger("seglab")
TRAIN_SUMMARY_FILE = "train_summary.json"
PER_IMAGE_FILE = "per_image.csv"
EVALUATIONS_DIR = "evaluations"


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
    from seglab.engine.fit import fit  # Lightning loads slowly: only when training

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


def evaluate_run(
    run_path: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    tta: bool = False,
    ensemble: list[str | os.PathLike] | tuple = (),
    overrides: list[str] | tuple = (),
    out_dir: str | os.PathLike | None = None,
) -> RunResult:
    """Metrics of a trained run on its test split (or on a labelled folder ``data_dir``).

    The plain evaluation (no data folder, TTA, ensemble or overrides) writes
    metrics.json, per_image.csv and the report into the run folder and stores the
    tuned threshold in model/model.json. Any other evaluation writes into
    ``out_dir``, by default a new folder under ``<run>/evaluations/``.
    """
    run_dir = Run.open(run_path)
    plain = data_dir is None and not tta and not ensemble and not overrides and out_dir is None
    if plain:
        attach_log_file(run_dir)
    for override in overrides:
        if not override.strip().startswith("eval."):
            raise SeglabError(
                f"evaluate --set {override!r}: only eval.* settings can change here",
                hint="e.g. --set eval.window=512 --set eval.tta=flips",
            )
    cfg = load_config(run_dir.file(CONFIG_FILE), list(overrides))
    device = inference_device(cfg.train.accelerator)
    model, meta = load_model_folder(run_dir.model_dir, device)
    settings = InferenceSettings.from_eval(cfg.eval, threshold=meta["threshold"])
    settings = settings.with_(tta="dihedral") if tta else settings
    num_classes = cfg.model.num_classes
    members = [Predictor(model, meta["normalization"], settings, device, num_classes)]
    names = [run_dir.name]
    for other in ensemble:
        folder = model_folder_of(other)
        other_model, other_meta = load_model_folder(folder, device)
        classes = other_meta.get("num_classes", other_meta["model"].get("num_classes"))
        channels = other_meta.get("in_channels", other_meta["model"].get("in_channels"))
        if channels != cfg.model.in_channels:
            raise SeglabError(
                f"ensemble member {other} takes {channels} input channel(s), "
                f"{run_dir.name} takes {cfg.model.in_channels}",
                hint="ensemble runs trained on the same kind of images",
            )
        norm = other_meta["normalization"]
        members.append(Predictor(other_model, norm, settings, device, classes))
        names.append(folder.parent.name if folder.name == MODEL_DIR else folder.name)
    predictor = Ensemble(members, names) if ensemble else members[0]

    split = run_dir.read_json(SPLIT_FILE) if run_dir.has(SPLIT_FILE) else None
    threshold, tuning = meta["threshold"], None
    if data_dir is None:
        data = prepare_data(cfg, split)
        samples, split_name = data.test, "test"
        if num_classes == 1 and cfg.eval.tune_threshold:
            threshold, tuning = _tune_on_validation(predictor, data.val, cfg, threshold)
    else:
        samples, split_name = _labelled_folder(cfg, data_dir), f"folder {data_dir}"
    evaluation = evaluate_samples(
        predictor,
        samples,
        num_classes=num_classes,
        threshold=threshold,
        ignore_index=cfg.data.ignore_index,
        split=split_name,
        settings=settings,
        bootstrap_samples=cfg.eval.bootstrap_samples,
        seed=cfg.seed,
    )
    if tuning:
        evaluation.metrics["threshold_tuning"] = tuning
    if ensemble:
        evaluation.metrics["ensemble"] = names

    target = (
        run_dir.path
        if plain
        else _evaluation_folder(run_dir, cfg, out_dir, tta, ensemble, data_dir)
    )
    atomic_write_json(target / METRICS_FILE, evaluation.metrics)
    atomic_write_csv(target / PER_IMAGE_FILE, evaluation.per_image, list(evaluation.per_image[0]))
    if plain:
        meta.update(threshold=threshold, inference=settings.to_json())
        atomic_write_json(run_dir.model_dir / META_FILE, meta)
    build_run_report(target, overlays(samples, evaluation, cfg.eval.n_overlays))
    _log_evaluation(evaluation.metrics, target)
    return RunResult(Run(target) if not plain else run_dir, evaluation.metrics)


def _tune_on_validation(
    predictor: ProbabilityModel, val: list[Sample], cfg: Config, current: float
) -> tuple[float, dict[str, Any]]:
    """The threshold that maximises validation IoU, and what it gains there."""
    probs = foreground_probabilities(predictor, val)
    best, table = tune_threshold(probs, [s.mask for s in val], cfg.data.ignore_index)
    base = cfg.eval.threshold
    nearest = min(table, key=lambda t: abs(t - base))
    return best, {
        "split": "val",
        "n_images": len(val),
        "configured": base,
        "chosen": best,
        "val_iou_at_configured": table[nearest],
        "val_iou_at_chosen": table[min(table, key=lambda t: abs(t - best))],
        "previous": current,
    }


def _labelled_folder(cfg: Config, data_dir: str | os.PathLike) -> list[Sample]:
    root = Path(data_dir).expanduser().resolve()
    data_cfg = cfg.data.model_copy(update={"source": "folder", "root": str(root)})
    samples = load_samples(data_cfg)
    channels = {s.channels for s in samples}
    if channels != {cfg.model.in_channels}:
        raise SeglabError(
            f"{root}: images have {sorted(channels)} channel(s) but the model expects "
            f"{cfg.model.in_channels}",
            hint="evaluate on images like the training images",
        )
    return samples


def _evaluation_folder(
    run_dir: Run,
    cfg: Config,
    out_dir: str | os.PathLike | None,
    tta: bool,
    ensemble: list | tuple,
    data_dir: str | os.PathLike | None,
) -> Path:
    """A new folder for a non-default evaluation, with what the report needs."""
    if out_dir is None:
        parts = [f"data-{Path(data_dir).name}" if data_dir else "test"]
        parts += ["tta"] if tta else []
        parts += [f"ensemble{len(ensemble) + 1}"] if ensemble else []
        target = run_dir.path / EVALUATIONS_DIR / run_folder_name("-".join(parts))
    else:
        target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=out_dir is not None)
    atomic_write_text(target / CONFIG_FILE, cfg.to_yaml())
    for name in (ENVIRONMENT_FILE, HISTORY_FILE, TRAIN_SUMMARY_FILE):
        if run_dir.has(name):
            atomic_write_bytes(target / name, run_dir.file(name).read_bytes())
    return target


def _log_evaluation(metrics: dict[str, Any], target: Path) -> None:
    d, ci = metrics["dataset"], metrics.get("ci95", {}).get("dataset", {})
    iou_ci = ci.get("iou")
    interval = f" (95% CI {_fmt(iou_ci[0])}-{_fmt(iou_ci[1])})" if iou_ci else ""
    log.info(
        "%s (%d images): IoU %s%s  Dice %s  precision %s  recall %s  threshold %.2f",
        metrics["split"],
        metrics["n_images"],
        _fmt(d["iou"]),
        interval,
        _fmt(d["dice"]),
        _fmt(d["precision"]),
        _fmt(d["recall"]),
        metrics["threshold"],
    )
    log.info("evaluation written to %s", target)


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


def predict(
    model_path: str | os.PathLike,
    inputs: list[Path],
    out_dir: str | os.PathLike,
    probabilities: bool = False,
    with_overlays: bool = False,
    tta: bool = False,
    accelerator: str = "auto",
) -> list[Path]:
    """Masks (and optionally probabilities, overlays) of images, folders and stacks."""
    folder = model_folder_of(model_path)
    device = inference_device(accelerator)
    model, meta = load_model_folder(folder, device)
    settings = InferenceSettings.from_meta(meta)
    settings = settings.with_(tta="dihedral") if tta else settings
    num_classes = int(meta.get("num_classes", meta["model"].get("num_classes", 1)))
    in_channels = int(meta.get("in_channels", meta["model"].get("in_channels", 1)))
    predictor = Predictor(model, meta["normalization"], settings, device, num_classes)
    files = collect_inputs([Path(p) for p in inputs])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for path in files:
        source = read_input(path, in_channels)
        labels, probs = predict_stack(predictor, source.image, settings, probabilities)
        files_out = write_prediction(source, out, labels, probs, num_classes, with_overlays)
        written += files_out
        kind = f"stack of {labels.shape[0]} slices" if source.is_stack else "image"
        log.info("%s (%s) -> %s", path.name, kind, files_out[0].name)
    log.info("%d input(s) predicted into %s", len(files), out)
    return written


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
        "inference": InferenceSettings.from_eval(cfg.eval).to_json(),
        "num_classes": cfg.model.num_classes,
        "in_channels": cfg.model.in_channels,
        "trained_in": run_dir.name,
        "seglab_version": __version__,
    }


def overlays(samples: list[Sample], evaluation: Evaluation, n: int) -> list[Overlay]:
    """The worst and best images by IoU (half each), for the report."""
    scored = sorted(evaluation.per_image, key=lambda r: _sort_key(r["iou"]))
    picked = scored[: (n + 1) // 2] + scored[::-1][: n // 2]
    by_name = {s.name: s for s in samples}
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
