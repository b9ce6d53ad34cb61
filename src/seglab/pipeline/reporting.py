"""``seglab report`` and ``seglab compare``: the analysis of run folders, as HTML and CSV."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from seglab.config import ModelConfig, load_config
from seglab.data.prepare import prepare_data
from seglab.errors import SeglabError
from seglab.inference.evaluate import evaluate_samples
from seglab.inference.predict import Predictor, inference_device
from seglab.inference.settings import InferenceSettings
from seglab.models.io import META_FILE, load_model_folder
from seglab.pipeline.common import PER_IMAGE_FILE, log
from seglab.report.comparison import Comparison, compare_runs
from seglab.report.run_facts import (
    SUMMARY_COLUMNS,
    csv_cell,
    lookup,
    number,
    read_optional,
    run_facts,
)
from seglab.report.run_report import Overlay, build_run_report
from seglab.runs import CONFIG_FILE, METRICS_FILE, MODEL_DIR, SPLIT_FILE, atomic_write_csv

SUMMARY_FILE = "performance_summary.csv"


def report(run_path: str | os.PathLike) -> Path:
    """Rewrite ``report.html`` and ``performance_summary.csv`` of a run folder."""
    run_dir = _run_folder(run_path)
    profile = model_profile(run_dir)
    html = build_run_report(run_dir, _overlays(run_dir), profile)
    write_performance_summary(run_dir, profile)
    log.info("report written to %s", html)
    return html


def write_performance_summary(run_dir: Path, profile: dict[str, Any] | None) -> Path:
    """``performance_summary.csv``: the run's one row, with comparison.csv's columns."""
    row = run_facts(run_dir, profile)
    return atomic_write_csv(
        run_dir / SUMMARY_FILE,
        [{c: csv_cell(row[c]) for c in SUMMARY_COLUMNS}],
        list(SUMMARY_COLUMNS),
    )


def compare(
    run_paths: list[str | os.PathLike], out: str | os.PathLike, metric: str = "iou"
) -> Comparison:
    """``comparison.html`` at ``out`` and ``comparison.csv`` beside it."""
    run_dirs = [_run_folder(p) for p in run_paths]
    profiles = {d: model_profile(d) for d in run_dirs}
    result = compare_runs(run_dirs, Path(out), metric, profiles)
    log.info("comparison written to %s and %s", result.html, result.csv)
    return result


def model_profile(run_dir: Path) -> dict[str, Any] | None:
    """Parameters and MACs of the run's model (rebuilt from model.json, no weights loaded).

    MACs are counted at 1 x in_channels x P x P with P the config's patch size, the
    input the model trained on. None when the run has no model folder.
    """
    meta = read_optional(run_dir / MODEL_DIR / META_FILE)
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict):
        return None
    from seglab.models.profile import profile_model  # torch: only when asked

    try:
        model_cfg = ModelConfig.model_validate({**meta["model"], "pretrained": False})
    except ValueError:
        return None
    size = lookup(read_optional(run_dir / CONFIG_FILE), "data.patch_size")
    size = size if isinstance(size, int) and size > 0 else 256
    profile = profile_model(model_cfg, size, "cpu", timing=False)
    return {
        "parameters": profile.parameters,
        "macs": profile.macs,
        "input": f"1x{model_cfg.in_channels}x{size}x{size}",
    }


def _run_folder(path: str | os.PathLike) -> Path:
    run_dir = Path(path)
    if not run_dir.is_dir() or not (run_dir / CONFIG_FILE).is_file():
        raise SeglabError(
            f"{run_dir} is not a run folder (no {CONFIG_FILE})",
            hint="pass a folder made by `seglab run`, `seglab train` or `seglab evaluate`",
        )
    return run_dir


def _overlays(run_dir: Path) -> list[Overlay]:
    """The best and worst test images (by per_image.csv), predicted again by the kept model.

    Only for a run folder evaluated on its own test split; anything missing (no model,
    data moved) gives a report without overlays, and a log line saying why.
    """
    metrics = read_optional(run_dir / METRICS_FILE)
    rows = read_optional(run_dir / PER_IMAGE_FILE)
    model_dir = run_dir / MODEL_DIR
    if lookup(metrics, "split") != "test" or not rows or not (model_dir / META_FILE).is_file():
        return []
    try:
        cfg = load_config(run_dir / CONFIG_FILE)
        split = read_optional(run_dir / SPLIT_FILE)
        data = prepare_data(cfg, split if isinstance(split, dict) else None)
        test = {s.name: s for s in data.test}
        by_iou = sorted(rows, key=_iou_or_best)
        n = cfg.eval.n_overlays
        picked = [r["name"] for r in by_iou[: (n + 1) // 2] + by_iou[::-1][: n // 2]]
        samples = [test[name] for name in dict.fromkeys(picked) if name in test]
        if not samples:
            return []
        device = inference_device(cfg.train.accelerator)
        model, meta = load_model_folder(model_dir, device)
        settings = InferenceSettings.from_meta(meta)
        predictor = Predictor(model, meta["normalization"], settings, device, cfg.model.num_classes)
        evaluation = evaluate_samples(
            predictor,
            samples,
            num_classes=cfg.model.num_classes,
            threshold=settings.threshold,
            ignore_index=cfg.data.ignore_index,
            settings=settings,
        )
    except (SeglabError, OSError, KeyError, ValueError) as exc:
        log.info("report: no prediction overlays (%s)", exc)
        return []
    scores = {r["name"]: r["iou"] for r in evaluation.per_image}
    return [
        Overlay(
            s.name,
            s.image[0] if s.channels == 1 else np.moveaxis(s.image[:3], 0, -1),
            s.mask,
            evaluation.predictions[s.name],
            scores[s.name],
        )
        for s in samples
    ]


def _iou_or_best(row: dict[str, Any]) -> float:
    value = number(row.get("iou"))
    return 2.0 if value is None else value  # NaN (nothing to find, none found) sorts as best
