"""train.checkpoint.ensemble: a run's best epochs as one network, the mean of their
probabilities, through training, the model folder, evaluation, prediction and export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.cli import main
from seglab.config import ModelConfig, load_config
from seglab.data.prepare import prepare_data
from seglab.engine.fit import fit
from seglab.errors import SeglabError
from seglab.models.ensemble import EpochEnsemble
from seglab.models.io import load_model_folder, network_weights, save_model_folder
from seglab.models.registry import create_model
from seglab.runs import Run


def nets(count: int, num_classes: int = 1) -> list[torch.nn.Module]:
    config = ModelConfig(depth=2, base_channels=4, num_classes=num_classes)
    out = []
    for seed in range(count):
        torch.manual_seed(seed)
        out.append(create_model(config).eval())
    return out


@pytest.mark.parametrize("num_classes", [1, 3])
def test_the_output_read_as_logits_is_the_mean_of_the_members_probabilities(num_classes):
    members = nets(3, num_classes)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        logits = EpochEnsemble(members).eval()(x)
        if num_classes == 1:
            got = torch.sigmoid(logits)
            want = torch.stack([torch.sigmoid(m(x)) for m in members]).mean(0)
        else:
            got = logits.softmax(1)
            want = torch.stack([m(x).softmax(1) for m in members]).mean(0)
    assert logits.shape == (2, num_classes, 32, 32) and logits.dtype == torch.float32
    assert torch.allclose(got, want, atol=1e-6)
    # differs from each member: it is not one of them
    assert all(not torch.allclose(got, torch.sigmoid(m(x)), atol=1e-3) for m in members[:1])


def test_certain_members_give_finite_logits():
    class Constant(torch.nn.Module):
        def __init__(self, value: float) -> None:
            super().__init__()
            self.value = value

        def forward(self, x):
            return torch.full((x.shape[0], 1, *x.shape[2:]), self.value)

    with torch.no_grad():
        logits = EpochEnsemble([Constant(1e4), Constant(1e4)])(torch.zeros(1, 1, 4, 4))
    assert torch.isfinite(logits).all() and (torch.sigmoid(logits) > 0.999).all()


def test_a_model_folder_holds_all_members_and_loads_them_back(tmp_path):
    ensemble = EpochEnsemble(nets(2)).eval()
    meta = {"model": ModelConfig(depth=2, base_channels=4).model_dump(mode="json")}
    save_model_folder(tmp_path, ensemble, {**meta, "ensemble": {"epochs": [5, 3]}})
    loaded, read_meta = load_model_folder(tmp_path)
    assert isinstance(loaded, EpochEnsemble) and len(loaded.members) == 2
    assert read_meta["ensemble"] == {"epochs": [5, 3]}
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), ensemble(x))


def test_keep_last_with_an_ensemble_is_refused():
    with pytest.raises(SeglabError, match="train.checkpoint.*keep: best, or ensemble: 1"):
        load_config(None, ["train.checkpoint.ensemble=3", "train.checkpoint.keep=last"])


def test_fit_keeps_the_k_best_epochs_best_first(tmp_path, tiny_overrides):
    # monitor the epoch number, smaller is better: epochs 1 and 2 are the best two of 4
    overrides = [
        "train.epochs=4",
        "train.checkpoint.monitor=epoch",
        "train.checkpoint.mode=min",
        "train.checkpoint.ensemble=2",
    ]
    cfg = load_config(None, [*tiny_overrides, *overrides])
    run = Run.create(tmp_path, "ensemble")
    result = fit(cfg, run, prepare_data(cfg))
    assert result.ensemble_epochs == [1, 2] and result.kept_epoch == 1
    assert sorted(p.name for p in run.checkpoints.iterdir()) == [
        "best.ckpt",
        "last.ckpt",
        "top_0.ckpt",
        "top_1.ckpt",
    ]
    assert isinstance(result.model, EpochEnsemble) and not result.model.training
    for member, name in zip(result.model.members, ("top_0.ckpt", "top_1.ckpt"), strict=True):
        saved = network_weights(torch.load(run.checkpoints / name, weights_only=True))
        state = member.state_dict()
        assert all(torch.equal(state[k], saved[k]) for k in saved)


def test_a_resumed_run_remembers_its_best_epochs(tmp_path, tiny_overrides):
    # monitor the epoch number, smaller is better: epochs 1 and 2, trained before the
    # resume, stay the best two; forgotten, the two after it would be kept
    overrides = [
        "train.checkpoint.monitor=epoch",
        "train.checkpoint.mode=min",
        "train.checkpoint.ensemble=2",
    ]
    run = Run.create(tmp_path, "resumed")
    first = load_config(None, [*tiny_overrides, *overrides, "train.epochs=2"])
    data = prepare_data(first)
    assert fit(first, run, data).ensemble_epochs == [1, 2]
    again = load_config(None, [*tiny_overrides, *overrides, "train.epochs=4"])
    result = fit(again, run, data, resume=True)
    assert result.epochs_run == 4 and result.ensemble_epochs == [1, 2]


def test_a_run_with_an_ensemble_evaluates_predicts_and_exports_its_mean(
    tmp_path, tiny_overrides, capsys
):
    args = ["run", "--runs-dir", str(tmp_path / "runs")]
    for override in [*tiny_overrides, "train.epochs=3", "train.checkpoint.ensemble=2"]:
        args += ["--set", override]
    assert main(args) == 0
    (run,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run / "train_summary.json").read_text())
    assert len(summary["ensemble_epochs"]) == 2 and summary["kept"] == "best"
    assert summary["ensemble_epochs"][0] == summary["kept_epoch"]
    meta = json.loads((run / "model" / "model.json").read_text())
    assert meta["ensemble"] == {"epochs": summary["ensemble_epochs"]}
    assert "mean prediction of epochs" in (run / "report.html").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["dataset"]["iou"] <= 1.0

    # one checkpoint alone is one member's network
    assert main(["evaluate", str(run), "--checkpoint", "best.ckpt"]) == 0
    capsys.readouterr()

    # predict writes what the ensemble says
    images = tmp_path / "images"
    images.mkdir()
    pixels = (np.random.default_rng(0).random((48, 48)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(images / "a.png")
    assert main(["predict", str(run), str(images), "--out", str(tmp_path / "pred")]) == 0
    assert list((tmp_path / "pred").rglob("a*"))

    # an export of the ensemble scores like the ensemble
    pytest.importorskip("onnxruntime")
    assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "onnx")]) == 0
    exported, _ = load_model_folder(tmp_path / "onnx")
    model, _ = load_model_folder(run / "model")
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(exported(x), model(x), atol=1e-4)
