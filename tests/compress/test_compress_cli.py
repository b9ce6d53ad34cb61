"""`seglab compress` and `seglab export` end to end on a tiny trained run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.cli import main
from seglab.compress.factorize import count_parameters
from seglab.models.io import load_model_folder
from seglab.models.lowrank import LowRankConv2d
from tests.conftest import TINY


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    assert main(["train", *[a for o in TINY for a in ("--set", o)], "--runs-dir", str(root)]) == 0
    return next(root.iterdir())


@pytest.fixture(scope="module")
def compressed(run_dir) -> Path:
    kept = (run_dir / "history.csv", run_dir / "model" / "model.json")
    before = {p: p.read_bytes() for p in kept}
    args = ["compress", str(run_dir), "--ranks", "2", "--finetune-epochs", "1"]
    assert main([*args, "--latency-repeats", "1", "--threads", "1"]) == 0
    for path, content in before.items():  # the original run's files stay as they were
        assert path.read_bytes() == content
    return run_dir / "compression"


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_compress_writes_the_table_and_a_loadable_model(compressed):
    rows = list(csv.DictReader((compressed / "summary.csv").open()))
    by_method = {(r["method"], r["setting"]): r for r in rows}
    original, low = by_method[("original", "-")], by_method[("low-rank", "rank2")]
    assert int(low["parameters"]) < int(original["parameters"])
    assert float(low["reduction_pct"]) > 0 and low["finetune_epochs"] == "1"
    assert all(float(r["latency_ms"]) > 0 for r in rows)
    assert ("onnx", "-") not in by_method and ("onnx", "original") in by_method
    control = by_method[("original-finetuned", "-")]  # fine-tuning alone, for reference
    assert control["parameters"] == original["parameters"] and control["iou_after_ft"] != ""
    assert (compressed / "tradeoff.png").is_file() and (compressed / "report.html").is_file()
    assert (compressed / "rank2" / "history.csv").is_file()  # fine-tuning history of its own
    report = (compressed.parent / "report.html").read_text()
    assert "<h2>Compression</h2>" in report and "rank2" in report
    model, meta = load_model_folder(compressed / "rank2" / "model")
    assert any(isinstance(m, LowRankConv2d) for m in model.modules())
    assert count_parameters(model) == int(low["parameters"])
    assert meta["factorized"] and meta["threshold"]


def _images(folder: Path) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for stem, size in {"a": (48, 40), "b": (33, 57)}.items():
        Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(folder / f"{stem}.png")
    return folder


def test_compressed_and_exported_models_predict(compressed, run_dir, tmp_path):
    images = _images(tmp_path / "images")
    model_folder = compressed / "rank2" / "model"
    assert main(["predict", str(model_folder), str(images), "--out", str(tmp_path / "p")]) == 0
    for fmt in ("onnx", "torchscript"):
        out = tmp_path / fmt
        assert main(["export", str(model_folder), "--format", fmt, "--out", str(out)]) == 0
        assert main(["predict", str(out), str(images), "--out", str(tmp_path / f"p{fmt}")]) == 0
        for stem in ("a", "b"):
            want = np.asarray(Image.open(tmp_path / "p" / f"{stem}.png"))
            got = np.asarray(Image.open(tmp_path / f"p{fmt}" / f"{stem}.png"))
            assert (want != got).mean() < 0.001  # the same masks, up to float rounding


def test_a_setting_folder_evaluates_like_a_run(compressed):
    assert main(["evaluate", str(compressed / "rank2")]) == 0
    low = next(
        r for r in csv.DictReader((compressed / "summary.csv").open()) if r["setting"] == "rank2"
    )
    metrics = json.loads((compressed / "rank2" / "metrics.json").read_text())
    assert metrics["split"] == "test"  # the run's own test split (split.json beside it)
    assert metrics["n_images"] > 0 and low["iou_after_ft"] != ""


def test_export_of_a_run_goes_into_the_run(run_dir):
    assert main(["export", str(run_dir)]) == 0
    assert (run_dir / "export" / "onnx" / "model.onnx").is_file()
    assert main(["export", str(run_dir)]) == 2  # never over an existing export


@pytest.mark.parametrize(
    ("args", "culprit"),
    [
        (["compress", "no/such/run", "--ranks", "4"], "no/such/run"),
        (["compress", "RUN", "--ranks", "4,x"], "'x'"),
        (["compress", "RUN", "--energies", "0.9,1.5"], "1.5"),
        (["export", "RUN", "--format", "tflite"], "tflite"),
        (["compress", "RUN", "--ranks", "4"], "compressed before"),  # never over its results
    ],
)
def test_bad_input_exits_2_with_one_line(run_dir, compressed, capsys, args, culprit):
    args = [str(run_dir) if a == "RUN" else a for a in args]
    assert main(args) == 2
    assert culprit in one_line_error(capsys)


def test_onnx_export_without_the_extra_names_it(run_dir, capsys, monkeypatch):
    import seglab.models.exported as exported

    monkeypatch.setattr(exported, "onnx_available", lambda: False)
    assert main(["export", str(run_dir), "--out", str(run_dir / "x")]) == 2
    assert "seglab[onnx]" in one_line_error(capsys)


def test_the_trade_off_table_scores_every_row_in_float32(monkeypatch):
    from types import SimpleNamespace

    from torch import nn

    from seglab.config import load_config
    from seglab.pipeline import compression

    seen = []

    def capture(model, normalization, settings, device, num_classes):
        seen.append(settings.cpu_precision)

    scored = SimpleNamespace(metrics={"dataset": {"iou": 0.5, "dice": 0.6}})
    monkeypatch.setattr(compression, "Predictor", capture)
    monkeypatch.setattr(compression, "evaluate_samples", lambda *args, **kwargs: scored)
    # the run's model.json asks for bfloat16 passes: the table compares formats itself
    meta = {"threshold": 0.5, "normalization": {}, "inference": {"cpu_precision": "bf16-mixed"}}
    scorer = compression._Scorer(load_config(None), meta, SimpleNamespace(test=["x"], val=[]))
    assert scorer(nn.Identity()) == (0.5, 0.6)
    assert seen == ["32"]
