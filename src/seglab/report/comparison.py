"""``comparison.html`` and ``comparison.csv``: several runs side by side, on one test set.

One row per run (the columns of :data:`SUMMARY_COLUMNS`), sorted by the chosen
test metric; validation curves overlaid; a bar chart with the 95% intervals; and
a paired bootstrap between the best run and each other run over the shared test
images (the same resampled images for both runs), from the per-image confusion
counts in ``per_image.csv``. Runs evaluated on different test sets are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import torch

from seglab.errors import SeglabError
from seglab.metrics.bootstrap import paired_bootstrap
from seglab.report import plots
from seglab.report.run_facts import (
    SUMMARY_COLUMNS,
    TEST_METRICS,
    csv_cell,
    lookup,
    number,
    read_optional,
    run_facts,
)
from seglab.runs import CONFIG_FILE, HISTORY_FILE, METRICS_FILE, atomic_write_csv, atomic_write_text

PER_IMAGE_FILE = "per_image.csv"
METRIC_NAMES = {"iou": "IoU", "dice": "Dice", "precision": "precision", "recall": "recall"}
PAIRED_COLUMNS = ("paired_vs", "paired_difference", "paired_ci_low", "paired_ci_high",
                  "paired_excludes_zero")  # fmt: skip
COMPARISON_COLUMNS = (*SUMMARY_COLUMNS, *PAIRED_COLUMNS)
_COUNT_NAMES = ("tp", "fp", "fn", "tn")
_TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass
class Comparison:
    rows: list[dict[str, Any]]  # sorted, best first, with the paired columns
    html: Path
    csv: Path


def per_image_counts(run_dir: Path) -> tuple[list[str], torch.Tensor]:
    """Image names and their (N, K, 4) confusion counts from ``per_image.csv``."""
    rows = read_optional(run_dir / PER_IMAGE_FILE)
    if not isinstance(rows, list) or not rows:
        raise SeglabError(
            f"{run_dir / PER_IMAGE_FILE} is missing or empty",
            hint=f"run `seglab evaluate {run_dir}` first",
        )
    columns = set(rows[0])
    if {"tp", "fp", "fn", "tn"} <= columns:
        suffixes = [""]
    else:
        suffixes = []
        while {f"{c}_{len(suffixes)}" for c in _COUNT_NAMES} <= columns:
            suffixes.append(f"_{len(suffixes)}")
    if not suffixes:
        raise SeglabError(
            f"{run_dir / PER_IMAGE_FILE} has no per-image confusion counts (tp, fp, fn, tn)",
            hint=f"it was written by an older seglab: run `seglab evaluate {run_dir}` again",
        )
    values = [[[number(r.get(c + s)) or 0.0 for c in _COUNT_NAMES] for s in suffixes] for r in rows]
    return [str(r["name"]) for r in rows], torch.tensor(values, dtype=torch.float64)


def test_set_of(run_dir: Path) -> dict[str, Any]:
    """What identifies the images a run was tested on: split, data source and image names."""
    cfg = read_optional(run_dir / CONFIG_FILE)
    metrics = read_optional(run_dir / METRICS_FILE)
    source = lookup(cfg, "data.source")
    identity = {
        "evaluated on": lookup(metrics, "split"),
        "data.source": source,
        "data.root": lookup(cfg, "data.root"),
    }
    if source == "synthetic":
        identity["data.synthetic"] = lookup(cfg, "data.synthetic")
    return identity


def compare_runs(
    run_dirs: list[Path],
    out_html: Path,
    metric: str = "iou",
    profiles: dict[Path, dict[str, Any]] | None = None,
) -> Comparison:
    """Write ``out_html`` and ``comparison.csv`` beside it; return the sorted rows."""
    if metric not in TEST_METRICS:
        known = ", ".join(TEST_METRICS)
        raise SeglabError(f"unknown metric {metric!r}", hint=f"use one of {known}")
    if len(run_dirs) < 2:
        raise SeglabError("compare needs at least two run folders", hint="pass RUN RUN [RUN...]")
    if len({d.resolve() for d in run_dirs}) != len(run_dirs):
        raise SeglabError("the same run folder is given twice", hint="pass each run once")
    counts = {d: per_image_counts(d) for d in run_dirs}
    _refuse_different_test_sets(run_dirs, counts)
    profiles = profiles or {}
    ranked = sorted(
        ((run_facts(d, profiles.get(d)), d) for d in run_dirs),
        key=lambda pair: -(pair[0][f"test_{metric}"] if pair[0][f"test_{metric}"] is not None
                           else -1e9),
    )  # fmt: skip
    rows, dirs = [r for r, _ in ranked], [d for _, d in ranked]
    best_dir = dirs[0]
    seed, n_samples = _bootstrap_settings(best_dir)
    order = counts[best_dir][0]
    paired = []
    for row, other in zip(rows[1:], dirs[1:], strict=True):
        names, other_counts = counts[other]
        index = [names.index(n) for n in order]  # the same images, in the best run's order
        result = paired_bootstrap(
            counts[best_dir][1], other_counts[index], metric, n_samples, 0.95, seed
        )
        row.update(
            paired_vs=rows[0]["run"],
            paired_difference=result["difference"],
            paired_ci_low=result["ci"][0],
            paired_ci_high=result["ci"][1],
            paired_excludes_zero=result["excludes_zero"],
        )
        paired.append({"run": row["run"], **result})
    out_html = Path(out_html)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    csv_path = out_html.with_name("comparison.csv")
    table = [{c: csv_cell(r.get(c)) for c in COMPARISON_COLUMNS} for r in rows]
    atomic_write_csv(csv_path, table, list(COMPARISON_COLUMNS))
    html = _render(rows, paired, dirs, metric, len(order), seed, n_samples)
    atomic_write_text(out_html, html)
    return Comparison(rows, out_html, csv_path)


def _refuse_different_test_sets(
    run_dirs: list[Path], counts: dict[Path, tuple[list[str], torch.Tensor]]
) -> None:
    first = run_dirs[0]
    reference = test_set_of(first)
    for other in run_dirs[1:]:
        identity = test_set_of(other)
        for key, value in reference.items():
            if identity.get(key) != value:
                raise SeglabError(
                    f"{other.name} and {first.name} were tested on different test sets "
                    f"({key}: {identity.get(key)!r} vs {value!r})",
                    hint="compare runs evaluated on the same images",
                )
        mine, theirs = set(counts[first][0]), set(counts[other][0])
        if mine != theirs or counts[first][1].shape[1:] != counts[other][1].shape[1:]:
            only = sorted(mine ^ theirs)[:3]
            raise SeglabError(
                f"{other.name} and {first.name} were tested on different test sets "
                f"({len(mine & theirs)} shared images of {len(mine)} and {len(theirs)}; "
                f"e.g. {', '.join(only) or 'class counts differ'})",
                hint="compare runs evaluated on the same images",
            )


def _bootstrap_settings(run_dir: Path) -> tuple[int, int]:
    cfg = read_optional(run_dir / CONFIG_FILE)
    seed = lookup(cfg, "seed")
    samples = lookup(cfg, "eval.bootstrap_samples")
    return (int(seed) if isinstance(seed, int) else 0), (
        int(samples) if isinstance(samples, int) and samples > 0 else 1000
    )


def _label(row: dict[str, Any], rank: int) -> str:
    return f"{rank}. {row['model'] or '?'} · {str(row['run'])[-6:]}"


def _render(
    rows: list[dict[str, Any]],
    paired: list[dict[str, Any]],
    dirs: list[Path],
    metric: str,
    n_images: int,
    seed: int,
    n_samples: int,
) -> str:
    curves = {}
    for row, run_dir in zip(rows, dirs, strict=True):
        history = read_optional(run_dir / HISTORY_FILE) or []
        epochs = [number(r.get("epoch")) for r in history]
        values = [number(r.get(f"val_{metric}")) for r in history]
        curves[_label(row, len(curves) + 1)] = (
            np.array([np.nan if e is None else e for e in epochs]),
            np.array([np.nan if v is None else v for v in values]),
        )

    def column(suffix: str) -> list[float]:
        values = [r[f"test_{metric}{suffix}"] for r in rows]
        return [float("nan") if v is None else v for v in values]

    bars = plots.bar_chart_with_errors(
        [_label(r, i + 1) for i, r in enumerate(rows)],
        column(""),
        column("_ci_low"),
        column("_ci_high"),
        f"test {METRIC_NAMES[metric]} (dataset-level), 95% CI",
    )
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("comparison.html.j2").render(
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        metric=METRIC_NAMES[metric],
        n_images=n_images,
        seed=seed,
        n_samples=n_samples,
        rows=[_display(r, i + 1) for i, r in enumerate(rows)],
        paired=[_display_paired(p) for p in paired],
        best=rows[0]["run"],
        curves=plots.overlaid_curves(curves, f"validation {METRIC_NAMES[metric]}"),
        bars=bars,
    )


def _fmt(value: Any, spec: str = ".4f") -> str:
    return "—" if value is None else format(value, spec)


def _display(row: dict[str, Any], rank: int) -> dict[str, Any]:
    def with_ci(name: str) -> str:
        low, high = row[f"test_{name}_ci_low"], row[f"test_{name}_ci_high"]
        ci = f" [{low:.4f}, {high:.4f}]" if low is not None and high is not None else ""
        return _fmt(row[f"test_{name}"]) + ci

    memory = row["peak_memory_mb"]
    return {
        "run": str(row["run"]),
        "label": _label(row, rank),
        "model": str(row["model"] or "—"),
        "parameters": "—" if row["parameters"] is None else f"{int(row['parameters']):,}",
        "gmacs": _fmt(row["gmacs"], ".3f"),
        "seconds": _fmt(row["train_seconds"], ".1f"),
        "memory": "—" if memory is None else f"{memory:,.0f} ({row['peak_memory_kind']})",
        "best_epoch": "—" if row["best_epoch"] is None else str(row["best_epoch"]),
        "stopped": str(row["stopped_because"] or "—"),
        "stability": _fmt(row["stability_std"]),
        "gap": _fmt(row["gap_iou"], "+.4f"),
        "metrics": [with_ci(m) for m in TEST_METRICS],
    }


def _display_paired(result: dict[str, Any]) -> dict[str, str]:
    lo, hi = result["ci"]
    return {
        "run": str(result["run"]),
        "a": _fmt(result["a"]),
        "b": _fmt(result["b"]),
        "difference": _fmt(result["difference"], "+.4f"),
        "ci": f"[{lo:+.4f}, {hi:+.4f}]",
        "verdict": "excludes 0" if result["excludes_zero"] else "includes 0",
    }
