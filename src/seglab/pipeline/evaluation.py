"""``seglab evaluate``: a trained run's metrics on its test split or on a labelled folder."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seglab.config import Config, load_config
from seglab.data.prepare import prepare_data
from seglab.data.readers import load_samples
from seglab.data.samples import Sample
from seglab.errors import SeglabError
from seglab.inference.ensemble import Ensemble
from seglab.inference.evaluate import (
    Evaluation,
    evaluate_samples,
    foreground_maps,
    predict_samples,
)
from seglab.inference.postprocess import (
    NO_POSTPROCESSING,
    is_active,
    settings_key,
    tune_postprocessing,
)
from seglab.inference.predict import Predictor, ProbabilityModel, inference_device
from seglab.inference.settings import InferenceSettings
from seglab.inference.threshold import tune_threshold
from seglab.models.ensemble import single_network
from seglab.models.exported import FORMAT_FILES
from seglab.models.io import META_FILE, load_model_folder, read_checkpoint
from seglab.pipeline.common import (
    EVALUATIONS_DIR,
    PER_IMAGE_FILE,
    TRAIN_SUMMARY_FILE,
    RunResult,
    attach_log_file,
    fmt,
    log,
    model_folder_of,
)
from seglab.pipeline.reporting import model_profile, write_performance_summary
from seglab.report.run_report import Overlay, build_run_report
from seglab.runs import (
    CONFIG_FILE,
    ENVIRONMENT_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    MODEL_DIR,
    SPLIT_FILE,
    Run,
    atomic_write_bytes,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    run_folder_name,
)


def evaluate_run(
    run_path: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    tta: bool = False,
    ensemble: list[str | os.PathLike] | tuple = (),
    overrides: list[str] | tuple = (),
    out_dir: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> RunResult:
    """Metrics of a trained run on its test split (or on a labelled folder ``data_dir``).

    ``checkpoint`` evaluates the weights of one of the run's checkpoints (a file name in
    ``<run>/checkpoints/`` such as ``last.ckpt``, or a path) instead of the kept model.
    The plain evaluation (no data folder, TTA, ensemble, overrides or checkpoint) writes
    metrics.json, per_image.csv and the report into the run folder and stores the
    tuned threshold in model/model.json. Any other evaluation writes into
    ``out_dir``, by default a new folder under ``<run>/evaluations/``.
    """
    run_dir = Run.open(run_path)
    plain = (
        data_dir is None
        and not tta
        and not ensemble
        and not overrides
        and out_dir is None
        and checkpoint is None
    )
    if plain:
        attach_log_file(run_dir)
    check_eval_overrides(overrides)
    cfg = load_config(run_dir.file(CONFIG_FILE), list(overrides))
    device = inference_device(cfg.train.accelerator)
    model, meta = load_model_folder(run_dir.model_dir, device)
    checkpoint_info = None
    if checkpoint is not None:
        model = single_network(model)  # an epoch ensemble: one checkpoint is one member
        checkpoint_info = _load_checkpoint_weights(model, meta, run_dir, checkpoint)
        # the threshold and post-processing meta holds were chosen for the kept weights
        meta = {**meta, "threshold": cfg.eval.threshold}
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
    threshold, tuning, fit_splits = meta["threshold"], None, None
    if data_dir is None:
        data = prepare_data(cfg, split)
        samples, split_name = data.test, "test"
        val_probabilities = None
        if num_classes == 1 and (cfg.eval.tune_threshold or cfg.eval.tune_postprocessing):
            # predicted once: tuned on here, and scored below for the generalisation gap
            val_probabilities = predict_samples(predictor, data.val)
            threshold, tuning = _tune_on_validation(val_probabilities, data.val, cfg, threshold)
            if "postprocessing" in tuning:
                settings = settings.with_(**tuning["postprocessing"]["chosen"])
        if plain:  # the report's generalisation gap: the kept model on its own training images
            fit_splits = _train_and_val_scores(
                predictor, data, cfg, settings.with_(threshold=threshold), val_probabilities
            )
        del val_probabilities  # not held through the test predictions
    else:
        samples, split_name = _labelled_folder(cfg, data_dir), f"folder {data_dir}"
        # what the run's evaluation chose on validation, for the kept weights only
        if cfg.eval.tune_postprocessing and checkpoint is None:
            settings = settings.with_(**InferenceSettings.from_meta(meta).postprocessing())
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
    evaluation.metrics["inference_precision"] = members[0].precision
    if tuning:
        evaluation.metrics["threshold_tuning"] = tuning
    if fit_splits is not None:
        evaluation.metrics["fit_splits"] = fit_splits
    if ensemble:
        evaluation.metrics["ensemble"] = names
    if checkpoint_info:
        evaluation.metrics["checkpoint"] = checkpoint_info

    target = (
        run_dir.path
        if plain
        else _evaluation_folder(run_dir, cfg, out_dir, tta, ensemble, data_dir, checkpoint_info)
    )
    atomic_write_json(target / METRICS_FILE, evaluation.metrics)
    atomic_write_csv(target / PER_IMAGE_FILE, evaluation.per_image, list(evaluation.per_image[0]))
    if plain:
        meta.update(threshold=threshold, inference=settings.to_json())
        atomic_write_json(run_dir.model_dir / META_FILE, meta)
    profile = None if ensemble else model_profile(run_dir.path)  # an ensemble has no one size
    build_run_report(target, overlays(samples, evaluation, cfg.eval.n_overlays), profile)
    write_performance_summary(target, profile)
    _log_evaluation(evaluation.metrics, target)
    return RunResult(Run(target) if not plain else run_dir, evaluation.metrics)


def check_eval_overrides(overrides: list[str] | tuple, command: str = "evaluate") -> None:
    """Re-evaluating a trained run may change how it is evaluated (``eval.*``), nothing
    that made the model; anything else is bad input."""
    for override in overrides:
        if not override.strip().startswith("eval."):
            raise SeglabError(
                f"{command} --set {override!r}: only eval.* settings can change here",
                hint="e.g. --set eval.window=512 --set eval.tta=flips",
            )


def _tune_on_validation(
    val_probabilities: list[torch.Tensor], val: list[Sample], cfg: Config, current: float
) -> tuple[float, dict[str, Any]]:
    """The threshold that maximises validation IoU (``eval.tune_threshold``; else
    ``current``), then the post-processing that maximises it at that threshold
    (``eval.tune_postprocessing``), and what each gains there. ``val_probabilities``
    are the model's predictions of ``val`` (``predict_samples``)."""
    probs = foreground_maps(val_probabilities)
    masks = [s.mask for s in val]
    best, table = tune_threshold(probs, masks, cfg.data.ignore_index)
    if not cfg.eval.tune_threshold:
        best = current
    base = cfg.eval.threshold
    nearest = min(table, key=lambda t: abs(t - base))
    tuning: dict[str, Any] = {
        "split": "val",
        "n_images": len(val),
        "configured": base,
        "chosen": best,
        "val_iou_at_configured": table[nearest],
        "val_iou_at_chosen": table[min(table, key=lambda t: abs(t - best))],
        "previous": current,
    }
    if cfg.eval.tune_postprocessing:
        chosen, scores = tune_postprocessing(probs, masks, best, cfg.data.ignore_index)
        tuning["postprocessing"] = {
            "chosen": chosen,
            "val_iou_without": scores[NO_POSTPROCESSING],
            "val_iou_at_chosen": scores[settings_key(chosen)],
            "candidates": len(scores),
        }
    elif is_active(configured := InferenceSettings.from_eval(cfg.eval)):
        # the thresholds above score the raw maps; what the configured post-processing
        # makes of them at the chosen threshold is the figure that judges that setting
        _, scores = tune_postprocessing(
            probs,
            masks,
            best,
            cfg.data.ignore_index,
            min_object_sizes=(configured.min_object_size,),
            openings=(configured.opening,),
        )
        tuning["val_iou_postprocessed"] = scores[settings_key(configured.postprocessing())]
    return best, tuning


GAP_TRAIN_IMAGES = 32  # training images scored for the generalisation gap


def _train_and_val_scores(
    predictor: ProbabilityModel,
    data: Any,
    cfg: Config,
    settings: InferenceSettings,
    val_probabilities: list[torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Scores of the kept (best) weights on the train and val splits, predicted like the test.

    The train split is scored on at most ``GAP_TRAIN_IMAGES`` of its images (a seeded
    choice), so that a large training set does not multiply the evaluation time. The val
    split's predictions are ``val_probabilities`` where tuning has made them already.
    """
    result: dict[str, Any] = {"threshold": settings.threshold}
    train = list(data.train)
    if len(train) > GAP_TRAIN_IMAGES:
        keep = np.random.default_rng(cfg.seed).choice(len(train), GAP_TRAIN_IMAGES, replace=False)
        train = [train[i] for i in sorted(keep)]
    for name, samples, probabilities in (
        ("train", train, None),
        ("val", data.val, val_probabilities),
    ):
        if not samples:
            continue
        scored = evaluate_samples(
            predictor,
            samples,
            num_classes=cfg.model.num_classes,
            threshold=settings.threshold,
            ignore_index=cfg.data.ignore_index,
            split=name,
            settings=settings,
            probabilities=probabilities,
        )
        result[name] = {
            "n_images": len(samples),
            "of_images": len(data.train) if name == "train" else len(samples),
            "dataset": scored.metrics["dataset"],
            "per_image_mean": scored.metrics["per_image_mean"],
        }
    return result


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
    checkpoint: dict[str, Any] | None = None,
) -> Path:
    """A new folder for a non-default evaluation, with what the report needs."""
    if out_dir is None:
        parts = [f"data-{Path(data_dir).name}" if data_dir else "test"]
        parts += [Path(checkpoint["file"]).stem] if checkpoint else []
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


def _load_checkpoint_weights(
    model: Any, meta: dict[str, Any], run_dir: Run, checkpoint: str | os.PathLike
) -> dict[str, Any]:
    """Load the network weights of one of the run's checkpoints into ``model``; returns
    the file and the epoch (from 1) it was written in."""
    path = Path(checkpoint)
    if not path.is_file() and not path.is_absolute():
        path = run_dir.checkpoints / checkpoint
    if not path.is_file():
        names = sorted(p.name for p in run_dir.checkpoints.glob("*.ckpt"))
        raise SeglabError(
            f"checkpoint not found: {checkpoint}",
            hint=f"name one of {', '.join(names)} in {run_dir.checkpoints}"
            if names
            else f"{run_dir.checkpoints} holds no checkpoints",
        )
    if meta.get("format") in FORMAT_FILES:
        raise SeglabError(
            f"{run_dir.model_dir} holds an exported model: a checkpoint's weights cannot go in",
            hint="evaluate --checkpoint on the run folder that trained it",
        )
    try:
        weights, epoch = read_checkpoint(path)
        model.load_state_dict(weights)
    except (RuntimeError, KeyError, TypeError, EOFError, pickle.UnpicklingError) as err:
        raise SeglabError(
            f"checkpoint {path}: its weights do not load into the run's model "
            f"({str(err).splitlines()[0][:200]})",
            hint="pass a checkpoint written by this run's training",
        ) from err
    return {"file": str(path), "epoch": epoch}


def _log_evaluation(metrics: dict[str, Any], target: Path) -> None:
    d, ci = metrics["dataset"], metrics.get("ci95", {}).get("dataset", {})
    iou_ci = ci.get("iou")
    interval = f" (95% CI {fmt(iou_ci[0])}-{fmt(iou_ci[1])})" if iou_ci else ""
    log.info(
        "%s (%d images): IoU %s%s  Dice %s  precision %s  recall %s  threshold %.2f",
        metrics["split"],
        metrics["n_images"],
        fmt(d["iou"]),
        interval,
        fmt(d["dice"]),
        fmt(d["precision"]),
        fmt(d["recall"]),
        metrics["threshold"],
    )
    log.info("evaluation written to %s", target)


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


def _sort_key(value: float) -> float:
    return value if value == value else float("inf")  # NaN (nothing to find) sorts as best
