"""Two-process DDP on CPU (gloo), and a sweep that survives a broken model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from seglab.runs import read_csv, read_json

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "data.synthetic.n_images=6",
    "data.synthetic.height=48",
    "data.synthetic.width=48",
    "data.patch_size=32",
    "data.patches_per_epoch=8",
    "model.depth=2",
    "model.base_channels=4",
    "train.epochs=2",
    "train.batch_size=2",
    "train.progress=false",
    "train.accelerator=cpu",
    "eval.n_overlays=1",
]


def seglab(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    env.pop("SEGLAB_RUN_DIR", None)
    sets = [arg for o in TINY for arg in ("--set", o)]
    return subprocess.run(
        [sys.executable, "-m", "seglab", *args, *sets],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_two_process_ddp_on_cpu_trains_to_the_end_in_one_run_folder(tmp_path):
    done = seglab(
        "train",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--set",
        "train.devices=2",
        "--set",
        "train.strategy=ddp",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = list((tmp_path / "runs").iterdir())  # both processes trained into one folder
    rows = read_csv(run / "history.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(r["val_iou"] for r in rows)
    summary = read_json(run / "train_summary.json")
    assert summary["completed"] and summary["epochs_run"] == 2
    assert (run / "model" / "model.safetensors").is_file()


def test_a_sweep_finishes_the_other_models_and_records_the_failure(tmp_path):
    done = seglab(
        "sweep", "--models", "unet,no_such_model", "--runs-dir", str(tmp_path), cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (folder,) = [p for p in tmp_path.iterdir() if p.name.startswith("20")]
    rows = {r["model"]: r for r in read_csv(folder / "sweep.csv")}
    assert rows["unet"]["status"] == "ok" and float(rows["unet"]["test_iou"]) >= 0
    assert int(rows["unet"]["parameters"]) > 0 and float(rows["unet"]["peak_rss_mb"]) > 0
    assert (folder / rows["unet"]["run_dir"] / "metrics.json").is_file()
    assert rows["no_such_model"]["status"] == "failed (exit 2)"
    assert "unknown model.name 'no_such_model'" in rows["no_such_model"]["error"]
