"""`seglab compare` on hand-written run folders: paired bootstrap, refusals, run facts."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from seglab.cli import main
from seglab.metrics.bootstrap import paired_bootstrap
from seglab.report.run_facts import run_facts
from seglab.report.run_report import build_run_report
from seglab.runs import atomic_write_csv, atomic_write_json, atomic_write_yaml

N_IMAGES = 24
HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "val_iou", "lr", "seconds", "peak_gpu_mb"]


def write_run(
    folder: Path,
    counts: np.ndarray,
    names: list[str] | None = None,
    synthetic_seed: int = 0,
    with_counts: bool = True,
) -> Path:
    """A run folder as `seglab run` leaves it, from (N, 4) per-image [tp, fp, fn, tn]."""
    names = names or [f"img_{i:02d}" for i in range(len(counts))]
    tp, fp, fn, tn = counts.sum(0).astype(float)
    iou = tp / (tp + fp + fn)
    config = {
        "name": folder.name,
        "seed": 7,
        "data": {"source": "synthetic", "root": None, "synthetic": {"seed": synthetic_seed}},
        "model": {"name": "unet"},
        "train": {"checkpoint": {"monitor": "val_iou"}},
        "eval": {"bootstrap_samples": 500},
    }
    atomic_write_yaml(folder / "config.yaml", config)
    dataset = {"iou": iou, "dice": 2 * tp / (2 * tp + fp + fn), "precision": tp / (tp + fp),
               "recall": tp / (tp + fn)}  # fmt: skip
    metrics = {"split": "test", "n_images": len(counts), "dataset": dataset,
               "ci95": {"dataset": {"iou": [iou - 0.05, iou + 0.05]}}}  # fmt: skip
    atomic_write_json(folder / "metrics.json", metrics)
    rows = []
    for name, (a, b, c, d) in zip(names, counts.tolist(), strict=True):
        row = {"name": name, "iou": a / (a + b + c)}
        rows.append({**row, "tp": a, "fp": b, "fn": c, "tn": d} if with_counts else row)
    atomic_write_csv(folder / "per_image.csv", rows, list(rows[0]))
    history = [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "val_loss": 1.1 / e,
            "val_iou": v,
            "lr": 1e-3,
            "seconds": 2.0,
            "peak_gpu_mb": 100.0 * e,
        }  # fmt: skip
        for e, v in enumerate([0.5, 0.6, 0.7, 0.8, 0.9, 1.0], start=1)
    ]
    atomic_write_csv(folder / "history.csv", history, HISTORY_COLUMNS)
    atomic_write_json(
        folder / "train_summary.json",
        {"stopped_because": "max_epochs", "best_epoch": 6, "epochs_run": 6, "seconds": 12.5},
    )
    return folder


def _counts(tp: np.ndarray, positives: int = 100, pixels: int = 1000) -> np.ndarray:
    """Per-image counts where each image has ``positives`` true pixels and tp of them found."""
    fn = positives - tp
    fp = np.full_like(tp, 10)
    return np.stack([tp, fp, fn, pixels - tp - fp - fn], axis=1)


def _pooled_iou(counts: np.ndarray) -> float:
    tp, fp, fn, _ = counts.sum(0).astype(float)
    return tp / (tp + fp + fn)


def _compare(tmp_path: Path, *runs: Path, metric: str = "iou") -> list[dict[str, str]]:
    out = tmp_path / "cmp" / "comparison.html"
    assert main(["compare", *map(str, runs), "--out", str(out), "--metric", metric]) == 0
    with open(out.with_name("comparison.csv"), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_runs_that_differ_on_purpose_give_the_difference_and_an_interval_without_zero(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(1)
    good = _counts(rng.integers(70, 95, N_IMAGES))
    worse = _counts(good[:, 0] - rng.integers(5, 15, N_IMAGES))  # worse on every image
    a = write_run(tmp_path / "a_good", good)
    b = write_run(tmp_path / "b_worse", worse)
    rows = _compare(tmp_path, b, a)  # the worse run first: the table is sorted anyway
    assert [r["run"] for r in rows] == ["a_good", "b_worse"]
    expected = _pooled_iou(good) - _pooled_iou(worse)
    assert expected > 0.05
    assert float(rows[1]["paired_difference"]) == pytest.approx(expected, abs=1e-5)
    low, high = float(rows[1]["paired_ci_low"]), float(rows[1]["paired_ci_high"])
    assert 0 < low < expected < high
    assert rows[1]["paired_excludes_zero"] == "True" and rows[1]["paired_vs"] == "a_good"
    html = (tmp_path / "cmp" / "comparison.html").read_text(encoding="utf-8")
    assert "excludes 0" in html and f"{expected:+.4f}" in html


def test_identical_or_evenly_mixed_predictions_give_an_interval_with_zero(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    base = rng.integers(60, 80, N_IMAGES)
    swing = np.where(np.arange(N_IMAGES) % 2 == 0, 8, -8)  # better on half, worse on half
    a = write_run(tmp_path / "a", _counts(base))
    same = write_run(tmp_path / "same", _counts(base))
    mixed = write_run(tmp_path / "mixed", _counts(base + swing))
    for other in (same, mixed):
        rows = _compare(tmp_path, a, other)
        assert float(rows[1]["paired_difference"]) == pytest.approx(0.0, abs=1e-9)
        assert float(rows[1]["paired_ci_low"]) <= 0 <= float(rows[1]["paired_ci_high"])
        assert rows[1]["paired_excludes_zero"] == "False"


def test_paired_bootstrap_is_seeded_and_pairs_images() -> None:
    rng = np.random.default_rng(3)
    a = torch.tensor(_counts(rng.integers(50, 90, 30)))[:, None, :]
    b = a.clone()
    b[:, 0, 0] -= 3  # every image 3 true pixels fewer
    b[:, 0, 2] += 3
    first = paired_bootstrap(a, b, "dice", 300, seed=5)
    assert first == paired_bootstrap(a, b, "dice", 300, seed=5)
    assert first["ci"] != paired_bootstrap(a, b, "dice", 300, seed=6)["ci"]
    # a uniform per-image shift: pairing leaves almost no spread in the difference
    assert first["ci"][1] - first["ci"][0] < 0.01 and first["excludes_zero"]
    with pytest.raises(ValueError, match="unknown metric"):
        paired_bootstrap(a, b, "hausdorff")


def test_different_test_sets_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    counts = _counts(np.full(N_IMAGES, 80))
    a = write_run(tmp_path / "a", counts)
    renamed = [f"other_{i}" for i in range(N_IMAGES)]
    for other in (
        write_run(tmp_path / "names", counts, names=renamed),
        write_run(tmp_path / "seed", counts, synthetic_seed=1),
    ):
        out = tmp_path / "refused.html"
        assert main(["compare", str(a), str(other), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "tested on different test sets" in err and other.name in err
        assert not out.exists() and not out.with_name("comparison.csv").exists()


def test_per_image_csv_without_counts_is_refused_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    counts = _counts(np.full(N_IMAGES, 80))
    a = write_run(tmp_path / "a", counts)
    old = write_run(tmp_path / "old", counts, with_counts=False)
    assert main(["compare", str(a), str(old)]) == 2
    assert "no per-image confusion counts" in capsys.readouterr().err


def test_run_facts_stability_memory_and_time(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", _counts(np.full(N_IMAGES, 80)))
    facts = run_facts(run)
    values = [0.6, 0.7, 0.8, 0.9, 1.0]  # the last 5 epochs of val_iou
    assert facts["stability_std"] == pytest.approx(float(np.std(values, ddof=1)))
    assert facts["stability_epochs"] == 5 and facts["monitor"] == "val_iou"
    assert facts["peak_memory_mb"] == 600.0 and facts["peak_memory_kind"] == "GPU"
    assert facts["train_seconds"] == 12.5 and facts["seconds_per_epoch"] == 2.0
    assert facts["gap_iou"] is None  # no train/val scores in metrics.json: not made up


def test_compression_section_shows_the_table_and_plots(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", _counts(np.full(N_IMAGES, 80)))
    assert "<h2>Compression</h2>" not in build_run_report(run).read_text(encoding="utf-8")
    (run / "compression").mkdir()
    rows = [
        {"method": "svd", "setting": "rank=8", "parameters": 1200, "reduction_pct": 61.5,
         "iou": 0.7012, "recovery_pct": 97.3},
        {"method": "svd", "setting": "<b>energy=0.9</b>", "parameters": 2100,
         "reduction_pct": 32.0, "iou": 0.7188, "recovery_pct": 99.7},
    ]  # fmt: skip
    atomic_write_csv(run / "compression" / "summary.csv", rows, list(rows[0]))
    from PIL import Image

    Image.new("RGB", (8, 6), (200, 30, 30)).save(run / "compression" / "tradeoff.png")
    html = build_run_report(run).read_text(encoding="utf-8")
    section = html[html.index("<h2>Compression</h2>") :]
    for text in ("reduction_pct", "recovery_pct", "rank=8", "61.5", "0.7188", "1,200"):
        assert text in section
    assert "&lt;b&gt;energy=0.9&lt;/b&gt;" in section and "<b>energy" not in html
    assert "tradeoff.png" in section and section.count("data:image/png;base64,") == 1
