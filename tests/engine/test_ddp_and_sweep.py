"""Two-process DDP on CPU (gloo), and a sweep that survives a broken model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

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


def seglab(
    *args: str,
    cwd: Path,
    timeout: float = 300,
    entry: tuple[str, ...] = ("-m", "seglab"),
    tiny: bool = True,
) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    env.pop("SEGLAB_RUN_DIR", None)
    sets = [arg for o in TINY for arg in ("--set", o)] if tiny else []
    return subprocess.run(
        [sys.executable, *entry, *args, *sets],
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
        "--set",
        "train.time_budget=10m",  # far off; its end-of-epoch decision is broadcast by rank 0
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = list((tmp_path / "runs").iterdir())  # both processes trained into one folder
    rows = read_csv(run / "history.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(r["val_iou"] for r in rows)
    summary = read_json(run / "train_summary.json")
    assert summary["completed"] and summary["epochs_run"] == 2
    assert (run / "model" / "model.safetensors").is_file()


# seglab's CLI with one more model: a tiny U-Net that runs __ACTION__ at its training
# call number __AT__ (from 0) on the process of rank 1 only (Lightning's DDP launcher
# reruns the script for rank 1)
RANK_1_CLI = """
import os, signal, sys
import torch
from seglab.cli import main
from seglab.models import registry
from seglab.models.registry import create_model

class OnRank1(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.inner = create_model(cfg.model_copy(update={"name": "unet"}))
        self.calls = 0

    def forward(self, x):
        out = self.inner(x)
        if self.training:
            if self.calls == __AT__ and os.environ.get("LOCAL_RANK") == "1":
                __ACTION__
            self.calls += 1
        return out

registry.available_models()
registry._MODELS["on_rank_1"] = OnRank1
sys.exit(main())
"""


def train_with_rank_1_event(
    tmp_path: Path, at: int, action: str
) -> tuple[subprocess.CompletedProcess, tuple[str, ...]]:
    """Two-process DDP training of ``on_rank_1``; the result and the CLI, to resume with."""
    script = tmp_path / "seglab_on_rank_1.py"
    script.write_text(RANK_1_CLI.replace("__AT__", str(at)).replace("__ACTION__", action))
    entry = (str(script),)
    ddp = ["train.devices=2", "train.strategy=ddp", "model.name=on_rank_1"]
    sets = [arg for o in ddp for arg in ("--set", o)]
    runs = str(tmp_path / "runs")
    done = seglab("train", "--runs-dir", runs, *sets, cwd=tmp_path, timeout=240, entry=entry)
    return done, entry


def test_a_nan_on_one_ddp_rank_is_skipped_by_every_rank(tmp_path):
    """A rank that skipped its backward alone would leave the others waiting in all-reduce."""
    done, _ = train_with_rank_1_event(tmp_path, at=1, action='out = out * float("nan")')
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = list((tmp_path / "runs").iterdir())
    rows = read_csv(run / "history.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert [r["skipped_steps"] for r in rows] == ["1", "0"]  # rank 0 skipped it too
    assert read_json(run / "train_summary.json")["completed"]


def test_a_signal_to_one_ddp_rank_stops_every_rank_at_the_same_step_and_resumes(tmp_path):
    """A rank that stopped alone would leave the others waiting in all-reduce: a hang."""
    # its third step: the first of epoch 2, with one more batch left in the epoch
    sigterm = "os.kill(os.getpid(), signal.SIGTERM)"
    done, entry = train_with_rank_1_event(tmp_path, at=2, action=sigterm)
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = list((tmp_path / "runs").iterdir())
    summary = read_json(run / "train_summary.json")
    assert summary["stopped_because"] == "signal SIGTERM" and not summary["completed"]
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 3  # inside epoch 2, where rank 1 got the signal
    assert [r["epoch"] for r in read_csv(run / "history.csv")] == ["1"]
    done = seglab("train", "--resume", str(run), cwd=tmp_path, timeout=240, entry=entry, tiny=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [r["epoch"] for r in read_csv(run / "history.csv")] == ["1", "2"]
    assert read_json(run / "train_summary.json")["completed"]


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
