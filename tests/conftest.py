"""Shared fixtures: tiny configs and tiny image folders."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.config import load_config

BENCH = Path(__file__).resolve().parents[1] / "bench"

TINY = [
    "data.synthetic.n_images=6",
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
]


@pytest.fixture
def tiny_overrides() -> list[str]:
    """--set overrides that make the default experiment run in seconds."""
    return list(TINY)


@pytest.fixture
def bench_module(monkeypatch):
    """``bench_module(name)`` imports ``bench/<name>.py``; the scripts import each other
    (``quality``, ``quality_table``...), so every module loaded from bench/ is dropped from
    ``sys.modules`` afterwards."""
    monkeypatch.syspath_prepend(str(BENCH))
    yield importlib.import_module
    for name, module in list(sys.modules.items()):
        if Path(getattr(module, "__file__", None) or "/").parent == BENCH:
            sys.modules.pop(name, None)


@pytest.fixture
def tiny_quality_run(bench_module, tmp_path, tiny_overrides, monkeypatch):
    """``tiny_quality_run(config_yaml, overrides, runs_dir)``: the record of one
    bench/quality.py seglab run of ``config_yaml`` (written to tmp_path/tiny.yaml) with
    ``tiny_overrides``, ``train.accelerator=cpu`` and then ``overrides``, in tmp_path/runs_dir."""
    quality = bench_module("quality")
    monkeypatch.setattr(quality, "reference_step_ms", lambda device: 1.0)  # not under test

    def run(config_yaml: str, overrides: list[str], runs_dir: str = "runs") -> dict:
        config = tmp_path / "tiny.yaml"
        config.write_text(config_yaml, encoding="utf-8")
        overrides = [*tiny_overrides, "train.accelerator=cpu", *overrides]
        return quality.one_run(str(config), overrides, tmp_path / runs_dir, "seglab")

    return run


@pytest.fixture
def tiny_config():
    return load_config(None, TINY)


def write_folder_dataset(root: Path, n: int = 4, size: tuple[int, int] = (40, 32)) -> Path:
    """images/ + masks/ with ``n`` grey PNGs and 0/255 masks (height, width = size)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        image = rng.integers(0, 256, size, dtype=np.uint8)
        mask = np.zeros(size, dtype=np.uint8)
        mask[5:15, 5 + i : 20 + i] = 255
        Image.fromarray(image).save(root / "images" / f"img{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"img{i}.png")
    return root


@pytest.fixture
def folder_dataset(tmp_path: Path) -> Path:
    return write_folder_dataset(tmp_path / "dataset")
