"""The test split never reaches training: not the weights, the best epoch, the threshold."""

from __future__ import annotations

import numpy as np
import torch
from safetensors.torch import load_file

from seglab import pipeline
from seglab.config import load_config
from seglab.data import prepare
from seglab.runs import read_csv, read_json

TIMING = {"seconds", "train_seconds", "images_per_s", "rss_mb", "peak_gpu_mb"}


def _history(run_path) -> list[dict]:
    rows = read_csv(run_path / "history.csv")
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_scrambling_the_test_images_and_masks_changes_nothing_but_the_test_score(
    tmp_path, tiny_overrides, monkeypatch
):
    cfg = load_config(None, [*tiny_overrides, "train.accelerator=cpu", "train.epochs=2"])
    honest = pipeline.train(cfg, tmp_path / "a").run.path
    honest_metrics = pipeline.evaluate_run(honest).metrics
    test_names = set(read_json(honest / "split.json")["test"])
    assert test_names

    real_loader = prepare.load_samples

    def scrambled_test_split(data_cfg):  # noqa: ANN001, ANN202
        samples = real_loader(data_cfg)
        rng = np.random.default_rng(1)
        for s in samples:
            if s.name in test_names:
                s.image = rng.random(s.image.shape, dtype=np.float32)
                s.mask = np.ascontiguousarray(s.mask[::-1, ::-1])  # same density, other pixels
        return samples

    monkeypatch.setattr(prepare, "load_samples", scrambled_test_split)
    other = pipeline.train(cfg, tmp_path / "b").run.path
    other_metrics = pipeline.evaluate_run(other).metrics

    assert read_json(other / "split.json") == read_json(honest / "split.json")
    assert _history(other) == _history(honest)  # same losses, val metrics, best epoch
    weights_a = load_file(honest / "model" / "model.safetensors")
    weights_b = load_file(other / "model" / "model.safetensors")
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    threshold = read_json(honest / "model" / "model.json")["threshold"]
    assert read_json(other / "model" / "model.json")["threshold"] == threshold  # tuned on val
    # ...while the test score did see the scrambled pixels
    assert other_metrics["dataset"]["iou"] != honest_metrics["dataset"]["iou"]
