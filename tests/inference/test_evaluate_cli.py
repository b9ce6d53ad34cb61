"""`seglab evaluate` end to end: intervals, tuned threshold, ensembles, other data, TTA."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from seglab.cli import main
from seglab.runs import read_csv

TINY = [
    "data.synthetic.n_images=14",
    "data.synthetic.height=48",
    "data.synthetic.width=48",
    "data.patch_size=32",
    "data.patches_per_epoch=8",
    "model.depth=2",
    "model.base_channels=4",
    "train.epochs=1",
    "train.batch_size=4",
    "train.progress=false",
    "eval.n_overlays=2",
    "eval.bootstrap_samples=200",
    "eval.cpu_precision=32",  # the same numbers on every CPU (auto: bfloat16 on some)
]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny trained and evaluated run (the CLI's `run`)."""
    root = tmp_path_factory.mktemp("runs")
    args = ["run", "--runs-dir", str(root)]
    for override in TINY:
        args += ["--set", override]
    assert main(args) == 0
    (path,) = root.iterdir()
    return path


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def only_evaluation(run: Path, before: set[Path]) -> Path:
    (new,) = set((run / "evaluations").iterdir()) - before
    return new


def existing(run: Path) -> set[Path]:
    folder = run / "evaluations"
    return set(folder.iterdir()) if folder.is_dir() else set()


def test_plain_evaluation_has_intervals_and_stores_the_tuned_threshold(run):
    metrics = read(run / "metrics.json")
    lo, hi = metrics["ci95"]["dataset"]["iou"]
    assert lo <= metrics["dataset"]["iou"] <= hi
    lo, hi = metrics["ci95"]["per_image_mean"]["dice"]
    assert lo <= metrics["per_image_mean"]["dice"] <= hi
    tuning = metrics["threshold_tuning"]
    assert tuning["val_iou_at_chosen"] >= tuning["val_iou_at_configured"]
    meta = read(run / "model" / "model.json")
    assert meta["threshold"] == metrics["threshold"] == tuning["chosen"]
    assert meta["inference"]["window"] == 256 and meta["inference"]["tta"] == "none"
    assert "95% CI" in (run / "report.html").read_text()


def test_an_ensemble_of_a_run_with_itself_scores_like_the_run(run, capsys):
    before = existing(run)
    assert main(["evaluate", str(run), "--ensemble", str(run)]) == 0
    folder = only_evaluation(run, before)
    plain, doubled = read(run / "metrics.json"), read(folder / "metrics.json")
    assert doubled["ensemble"] == [run.name, run.name]
    for key in ("dataset", "per_image_mean", "ci95", "threshold"):
        assert doubled[key] == plain[key]
    assert (folder / "report.html").is_file() and (folder / "per_image.csv").is_file()


def test_evaluate_on_a_labelled_folder_and_with_tta(run, tmp_path):
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (tmp_path / "d" / sub).mkdir(parents=True)
    for i in range(4):
        image = rng.integers(0, 256, (50, 60), dtype=np.uint8)
        Image.fromarray(image).save(tmp_path / "d" / "images" / f"im{i}.png")
        Image.fromarray(((image > 128) * 255).astype(np.uint8)).save(
            tmp_path / "d" / "masks" / f"im{i}.png"
        )
    out = tmp_path / "eval"
    assert main(["evaluate", str(run), "--data", str(tmp_path / "d"), "--out", str(out)]) == 0
    metrics = read(out / "metrics.json")
    assert metrics["n_images"] == 4 and metrics["split"].startswith("folder")
    assert metrics["threshold"] == read(run / "model" / "model.json")["threshold"]
    assert len(read_csv(out / "per_image.csv")) == 4
    before = existing(run)
    assert main(["evaluate", str(run), "--tta", "--set", "eval.fill_holes=true"]) == 0
    metrics = read(only_evaluation(run, before) / "metrics.json")
    assert metrics["tta"] == "dihedral" and metrics["postprocessing"]["fill_holes"] is True
    assert read(run / "model" / "model.json")["inference"]["tta"] == "none"  # left alone


def test_bfloat16_forward_passes_on_cpu_are_recorded_and_score_like_float32(run):
    plain = read(run / "metrics.json")
    assert plain["inference_precision"] == "32"
    before = existing(run)
    assert main(["evaluate", str(run), "--set", "eval.cpu_precision=bf16-mixed"]) == 0
    metrics = read(only_evaluation(run, before) / "metrics.json")
    assert metrics["inference_precision"] == "bf16-mixed"
    assert metrics["dataset"]["iou"] == pytest.approx(plain["dataset"]["iou"], abs=0.02)
    assert read(run / "model" / "model.json")["inference"]["cpu_precision"] == "32"


def test_tuned_postprocessing_is_applied_reported_and_stored(run, tmp_path):
    before = existing(run)
    # 7 px is no candidate: the tuned choice must replace it
    sets = ["--set", "eval.tune_postprocessing=true", "--set", "eval.min_object_size=7"]
    assert main(["evaluate", str(run), *sets]) == 0
    metrics = read(only_evaluation(run, before) / "metrics.json")
    tuned = metrics["threshold_tuning"]["postprocessing"]
    assert metrics["postprocessing"] == tuned["chosen"] and tuned["candidates"] == 60
    assert tuned["chosen"]["min_object_size"] != 7
    assert tuned["val_iou_at_chosen"] >= tuned["val_iou_without"]
    assert read(run / "model" / "model.json")["inference"]["min_object_size"] == 0  # left alone
    # a run whose config asks for it: the plain evaluation stores the choice for predict
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["eval"].update(tune_postprocessing=True, min_object_size=7)
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["evaluate", str(copy)]) == 0
    metrics, meta = read(copy / "metrics.json"), read(copy / "model" / "model.json")
    chosen = metrics["threshold_tuning"]["postprocessing"]["chosen"]
    assert {k: meta["inference"][k] for k in chosen} == chosen == metrics["postprocessing"]
    assert meta["inference"]["min_object_size"] != 7


def test_evaluate_argument_errors(run, capsys):
    assert main(["evaluate", str(run), str(run)]) == 2
    assert "--ensemble" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--set", "train.epochs=3"]) == 2
    assert "only eval.* settings" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--set", "eval.overlap=1.5"]) == 2
    assert "eval.overlap" in capsys.readouterr().err


def test_a_checkpoint_of_the_run_is_evaluated_apart_from_the_kept_model(run, tmp_path):
    plain_meta = (run / "model" / "model.json").read_text()
    before = existing(run)
    assert main(["evaluate", str(run), "--checkpoint", "last.ckpt"]) == 0
    folder = only_evaluation(run, before)
    assert "last" in folder.name
    metrics, plain = read(folder / "metrics.json"), read(run / "metrics.json")
    assert metrics["checkpoint"] == {"file": str(run / "checkpoints" / "last.ckpt"), "epoch": 1}
    summary = read(run / "train_summary.json")
    assert summary["kept"] == "best" and summary["kept_epoch"] == 1
    # one epoch: the last checkpoint holds the kept weights, so it scores the same
    assert metrics["dataset"] == plain["dataset"] and metrics["threshold"] == plain["threshold"]

    # other weights (a path outside the run): every weight zeroed predicts one probability
    # everywhere, so all pixels or none are foreground
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    saved["state_dict"] = {k: torch.zeros_like(v) for k, v in saved["state_dict"].items()}
    torch.save(saved, tmp_path / "zeros.ckpt")
    before = existing(run)
    assert main(["evaluate", str(run), "--checkpoint", str(tmp_path / "zeros.ckpt")]) == 0
    zeros = read(only_evaluation(run, before) / "metrics.json")
    assert zeros["dataset"]["recall"] in (0.0, 1.0) and zeros["dataset"] != plain["dataset"]
    assert (run / "model" / "model.json").read_text() == plain_meta  # the kept model untouched


def test_a_checkpoint_that_is_missing_or_not_one_is_bad_input(run, tmp_path, capsys):
    before = existing(run)
    assert main(["evaluate", str(run), "--checkpoint", "epoch_7.ckpt"]) == 2
    err = capsys.readouterr().err
    assert "epoch_7.ckpt" in err and "last.ckpt" in err
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    assert main(["evaluate", str(run), "--checkpoint", str(garbage)]) == 2
    assert "garbage.ckpt" in capsys.readouterr().err
    other = {"state_dict": {"model.nothing": torch.zeros(1)}, "epoch": 0}
    torch.save(other, tmp_path / "other.ckpt")
    assert main(["evaluate", str(run), "--checkpoint", str(tmp_path / "other.ckpt")]) == 2
    assert "do not load" in capsys.readouterr().err
    torch.save(torch.zeros(3), tmp_path / "tensor.ckpt")  # loads safely, but is no checkpoint
    assert main(["evaluate", str(run), "--checkpoint", str(tmp_path / "tensor.ckpt")]) == 2
    err = capsys.readouterr().err
    assert "tensor.ckpt" in err and "holds a Tensor, not a checkpoint" in err
    assert existing(run) == before  # no evaluation folder left behind


def test_configured_postprocessing_is_scored_on_validation(run):
    plain = read(run / "metrics.json")["threshold_tuning"]  # the run's own evaluation
    assert "val_iou_postprocessed" not in plain  # nothing configured: the raw figure is it
    assert plain["val_iou_at_chosen"] > 0
    before = existing(run)
    # objects of a billion pixels: every predicted object is removed
    assert main(["evaluate", str(run), "--set", "eval.min_object_size=1000000000"]) == 0
    tuning = read(only_evaluation(run, before) / "metrics.json")["threshold_tuning"]
    # the threshold is chosen on the raw maps, as before; what the setting makes of them
    # at that threshold is reported beside it
    assert tuning["val_iou_at_chosen"] == pytest.approx(plain["val_iou_at_chosen"])
    assert tuning["val_iou_postprocessed"] == 0.0


def test_the_plain_evaluation_predicts_each_validation_image_once(run, tmp_path, monkeypatch):
    """Tuning and the generalisation gap's val scores share one prediction of each image."""
    from seglab.inference.predict import Predictor

    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    calls = []
    original = Predictor.probabilities

    def counted(self, images):
        calls.append(1)
        return original(self, images)

    monkeypatch.setattr(Predictor, "probabilities", counted)
    assert main(["evaluate", str(copy)]) == 0
    metrics = read(copy / "metrics.json")
    fit = metrics["fit_splits"]
    assert metrics["threshold_tuning"]["n_images"] == fit["val"]["n_images"] > 0
    assert len(calls) == metrics["n_images"] + fit["train"]["n_images"] + fit["val"]["n_images"]
    assert fit == read(run / "metrics.json")["fit_splits"]


def test_given_probabilities_are_scored_like_a_fresh_prediction():
    from seglab.data.samples import Sample
    from seglab.inference.evaluate import evaluate_samples, predict_samples
    from seglab.inference.predict import Predictor

    rng = np.random.default_rng(0)
    samples = []
    for i in range(3):
        image = rng.random((1, 24, 32), dtype=np.float32)
        samples.append(Sample(f"s{i}", image, (image[0] > 0.5).astype(np.int64)))
    torch.manual_seed(0)
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    predictor = Predictor(net, {"mean": [0.5], "std": [0.3]})
    fresh = evaluate_samples(predictor, samples, threshold=0.4)
    given = predict_samples(predictor, samples)

    class Unused:
        def probabilities(self, images):
            raise AssertionError("predicted again")

    reused = evaluate_samples(Unused(), samples, threshold=0.4, probabilities=given)
    assert reused.metrics == fresh.metrics and reused.per_image == fresh.per_image
    for name, pred in fresh.predictions.items():
        np.testing.assert_array_equal(reused.predictions[name], pred)
    with pytest.raises(ValueError, match="2 probability maps for 3 samples"):
        evaluate_samples(Unused(), samples, probabilities=given[:2])
