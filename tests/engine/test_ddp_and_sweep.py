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


# seglab's CLI with one more model: a tiny U-Net whose second training step gives NaN on
# the process of rank 1 only (Lightning's DDP launcher reruns this script for rank 1)
NAN_ON_RANK_1 = """
import os, sys
import torch
from seglab.cli import main
from seglab.models import registry
from seglab.models.registry import create_model

class NanOnRank1(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.inner = create_model(cfg.model_copy(update={"name": "unet"}))
        self.calls = 0

    def forward(self, x):
        out = self.inner(x)
        if self.training:
            if self.calls == 1 and os.environ.get("LOCAL_RANK") == "1":
                out = out * float("nan")
            self.calls += 1
        return out

registry.available_models()
registry._MODELS["nan_on_rank_1"] = NanOnRank1
sys.exit(main())
"""


def test_a_nan_on_one_ddp_rank_is_skipped_by_every_rank(tmp_path):
    """A rank that skipped its backward alone would leave the others waiting in all-reduce."""
    script = tmp_path / "seglab_with_nan.py"
    script.write_text(NAN_ON_RANK_1)
    done = seglab(
        "train",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--set",
        "train.devices=2",
        "--set",
        "train.strategy=ddp",
        "--set",
        "model.name=nan_on_rank_1",
        cwd=tmp_path,
        timeout=240,
        entry=(str(script),),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = list((tmp_path / "runs").iterdir())
    rows = read_csv(run / "history.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert [r["skipped_steps"] for r in rows] == ["1", "0"]  # rank 0 skipped it too
    assert read_json(run / "train_summary.json")["completed"]


# seglab's CLI with a tiny U-Net whose process of rank 1, alone, receives SIGTERM at its
# third training step: the first step of epoch 2, with one more batch left in the epoch
SIGTERM_ON_RANK_1 = """
import os, signal, sys
import torch
from seglab.cli import main
from seglab.models import registry
from seglab.models.registry import create_model

class SigtermOnRank1(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.inner = create_model(cfg.model_copy(update={"name": "unet"}))
        self.calls = 0

    def forward(self, x):
        if self.training:
            if self.calls == 2 and os.environ.get("LOCAL_RANK") == "1":
                os.kill(os.getpid(), signal.SIGTERM)
            self.calls += 1
        return self.inner(x)

registry.available_models()
registry._MODELS["sigterm_on_rank_1"] = SigtermOnRank1
sys.exit(main())
"""


def test_a_signal_to_one_ddp_rank_stops_every_rank_at_the_same_step_and_resumes(tmp_path):
    """A rank that stopped alone would leave the others waiting in all-reduce: a hang."""
    script = tmp_path / "seglab_with_sigterm.py"
    script.write_text(SIGTERM_ON_RANK_1)
    ddp = ["--set", "train.devices=2", "--set", "train.strategy=ddp"]
    done = seglab(
        "train",
        "--runs-dir",
        str(tmp_path / "runs"),
        *ddp,
        "--set",
        "model.name=sigterm_on_rank_1",
        cwd=tmp_path,
        timeout=240,
        entry=(str(script),),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = list((tmp_path / "runs").iterdir())
    summary = read_json(run / "train_summary.json")
    assert summary["stopped_because"] == "signal SIGTERM" and not summary["completed"]
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 3  # inside epoch 2, where rank 1 got the signal
    assert [r["epoch"] for r in read_csv(run / "history.csv")] == ["1"]
    done = seglab(
        "train", "--resume", str(run), cwd=tmp_path, timeout=240, entry=(str(script),), tiny=False
    )
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
