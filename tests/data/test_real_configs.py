"""The configs in configs/ pass check-data on the real datasets (skipped where absent)."""

import os
from pathlib import Path

import pytest

from seglab.config import load_config, read_yaml
from seglab.data.check import check_data
from seglab.data.readers import clear_cache

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SEGLAB_SHARED_DATA", REPO / ".." / "shared" / "data"))
CONFIGS = {
    "isbi2012": [],
    "hsi_abu": [],
    "drive": [],
    "deepcrack": [pytest.mark.slow],  # 300 images
    "lucchi": [pytest.mark.slow],  # 165 slices of 1024 x 768
}
GPU_VARIANTS = {"lucchi_gpu": "lucchi", "deepcrack_gpu": "deepcrack"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=marks) for n, marks in CONFIGS.items()])
def test_config_passes_check_data_on_the_real_data(name):
    path = REPO / "configs" / f"{name}.yaml"
    root = read_yaml(path)["data"]["root"]  # ../shared/data/<dataset>, from the repo root
    sub = root.split("shared/data/", 1)[1]
    if not (SHARED / sub).is_dir():
        pytest.skip(f"{SHARED / sub} not found (set SEGLAB_SHARED_DATA)")
    clear_cache()
    try:
        result = check_data(load_config(path, [f"data.root={SHARED / sub}"]))
    finally:
        clear_cache()
    assert not result.errors, result.errors[:3]
    assert result.split and all(result.split[p] for p in ("train", "val", "test"))
    assert {r["channels"] for r in result.rows} == {load_config(path).model.in_channels}


@pytest.mark.parametrize("name", sorted(GPU_VARIANTS))
def test_gpu_variant_reads_the_same_data_and_split_as_its_cpu_config(name):
    gpu, cpu = (
        load_config(REPO / "configs" / f"{name}.yaml"),
        load_config(REPO / "configs" / f"{GPU_VARIANTS[name]}.yaml"),
    )
    assert gpu.data.root == cpu.data.root and gpu.data.split == cpu.data.split
    assert gpu.seed == cpu.seed and gpu.model.in_channels == cpu.model.in_channels
    assert gpu.train.time_budget and gpu.train.precision == "bf16-mixed"


@pytest.mark.parametrize("name", sorted(GPU_VARIANTS))
def test_gpu_variant_evaluates_with_its_cpu_configs_tta_and_post_processing(name):
    # chosen on validation over CPU runs; a change there must reach the GPU variant too
    gpu, cpu = (
        load_config(REPO / "configs" / f"{name}.yaml").eval,
        load_config(REPO / "configs" / f"{GPU_VARIANTS[name]}.yaml").eval,
    )
    fields = ("tta", "opening", "fill_holes", "min_object_size", "threshold")
    assert {f: getattr(gpu, f) for f in fields} == {f: getattr(cpu, f) for f in fields}
