"""Runs that are killed, signalled or resumed end where an uninterrupted run ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from seglab.runs import read_csv, read_json

SRC = Path(__file__).resolve().parents[2] / "src"
# 4 epochs of 64 steps, about 0.6 s each here: long enough to be interrupted mid-epoch, short
# enough for CI. The signal tests send theirs once epoch 1 is in history.csv and need the
# run still training when it arrives: with 16 steps (0.15 s an epoch) the last 3 epochs could
# end first on a loaded machine, and the SLURM test failed so once in CI
RESUME_TINY = [
    "data.synthetic.n_images=6",
    "data.synthetic.height=48",
    "data.synthetic.width=48",
    "data.patch_size=32",
    "data.patches_per_epoch=256",
    "model.depth=2",
    "model.base_channels=4",
    "train.epochs=4",
    "train.batch_size=4",
    "train.progress=false",
    "train.accelerator=cpu",
]


def seglab(*args: str, cwd: Path, env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    env.pop("SEGLAB_RUN_DIR", None)
    env.update(env_extra or {})
    return subprocess.Popen(
        [sys.executable, "-m", "seglab", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def train_args(runs: Path) -> list[str]:
    args = ["train", str(Path(__file__).resolve().parents[2] / "configs" / "default.yaml")]
    for override in RESUME_TINY:
        args += ["--set", override]
    return [*args, "--runs-dir", str(runs)]


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def only_run(runs: Path) -> Path:
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    return run


def wait_for_epochs(run_root: Path, n: int, proc: subprocess.Popen, timeout: float = 180) -> Path:
    """Wait until history.csv of the (only) run under run_root holds n epochs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        runs = [p for p in run_root.iterdir() if p.is_dir()] if run_root.exists() else []
        if runs and (runs[0] / "history.csv").is_file():
            if len(read_csv(runs[0] / "history.csv")) >= n:
                return runs[0]
        time.sleep(0.05)
    raise AssertionError("training did not reach the expected epoch in time")


def final_figures(run: Path) -> list[tuple]:
    rows = read_csv(run / "history.csv")
    keys = ("epoch", "train_loss", "val_loss", "val_iou", "val_dice", "lr")
    return [tuple(round(float(r[k]), 4) for k in keys) for r in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[tuple]:
    runs = tmp_path_factory.mktemp("reference")
    rc, out = finish(seglab(*train_args(runs), cwd=runs))
    assert rc == 0, out
    return final_figures(only_run(runs))


def test_sigterm_then_kill_9_mid_epoch_and_resumes_equal_the_uninterrupted_run(tmp_path, reference):
    runs = tmp_path / "runs"
    # SIGTERM in the second epoch: a checkpoint at that step, exit code 0
    proc = seglab(*train_args(runs), cwd=tmp_path)
    run = wait_for_epochs(runs, 1, proc)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    rc, out = finish(proc)
    assert rc == 0, out
    summary = read_json(run / "train_summary.json")
    assert summary["stopped_because"] == "signal SIGTERM" and summary["completed"] is False
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["state_dict"] and checkpoint["optimizer_states"]
    # resume, then kill -9 as soon as epoch 2 is written: inside epoch 3 (or 4 on a fast
    # machine), at a moment nothing is saved
    proc = seglab("train", "--resume", str(run), cwd=tmp_path)
    wait_for_epochs(runs, 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(read_csv(run / "history.csv")) < 4
    # resume again: the same figures, to 4 decimals, as the run that never stopped
    rc, out = finish(seglab("train", "--resume", str(run), cwd=tmp_path))
    assert rc == 0, out
    assert final_figures(run) == reference
    summary = read_json(run / "train_summary.json")
    assert summary["stopped_because"] == "max_epochs" and summary["completed"] is True


def test_slurm_requeue_checkpoints_requeues_and_the_requeued_job_ends_like_the_reference(
    tmp_path, reference
):
    """SLURM without SLURM: its variables, a fake scontrol, and the signals SLURM sends."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "scontrol_calls.txt"
    scontrol = fake_bin / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(0o755)
    run = tmp_path / "runs" / "job"
    slurm = {
        "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "seglab-test",
        "SLURM_NTASKS": "1",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_NNODES": "1",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SEGLAB_RUN_DIR": str(run),
    }
    args = [a for a in train_args(tmp_path / "unused") if a != "--runs-dir"][:-1]
    proc = seglab(*args, cwd=tmp_path, env_extra=slurm)
    wait_for_epochs(tmp_path / "runs", 1, proc)
    # SLURM's warning before the time limit (#SBATCH --signal=SIGUSR1@90): Lightning saves
    # hpc_ckpt_1.ckpt and requeues the job; SLURM then stops the job with SIGTERM
    proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 60
    while not calls.is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert calls.read_text().split() == ["requeue", "4242"]
    assert list(run.glob("hpc_ckpt_*.ckpt"))
    proc.send_signal(signal.SIGTERM)
    rc, out = finish(proc)
    assert rc == 0, out
    assert read_json(run / "train_summary.json")["completed"] is False
    # the requeued job: the same command, the same SEGLAB_RUN_DIR
    rc, out = finish(seglab(*args, cwd=tmp_path, env_extra=slurm))
    assert rc == 0, out
    assert final_figures(run) == reference
    summary = read_json(run / "train_summary.json")
    assert summary["completed"] is True and summary["sessions"] == 2


@pytest.mark.parametrize(
    "at_last_batch, extra",
    [
        # a checkpoint between an epoch's last step and its validation resumes wrongly in
        # Lightning (that epoch's validation and the next epoch's row were lost): the stop waits
        (True, []),
        # mid-epoch with an average of the weights: the average resumes where it was
        (False, ["train.ema_decay=0.9"]),
    ],
)
def test_a_signal_in_the_second_epoch_resumes_like_the_uninterrupted_run(
    tmp_path, monkeypatch, at_last_batch, extra
):
    from seglab.config import load_config
    from seglab.data.prepare import prepare_data
    from seglab.engine import stopping
    from seglab.engine.fit import fit
    from seglab.runs import Run

    cfg = load_config(None, [*RESUME_TINY, *extra])
    data = prepare_data(cfg)
    reference_run = Run.create(tmp_path, "reference")
    fit(cfg, reference_run, data)

    noticed, epoch = stopping.StopConditions.on_train_batch_end, 1  # the second epoch

    def signal_in_epoch(self, trainer, module, outputs, batch, batch_idx):  # noqa: ANN001
        last_batch = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        if trainer.current_epoch == epoch and (last_batch if at_last_batch else batch_idx == 5):
            self._signal = "SIGTERM"  # what the handler sets when the signal arrives
        noticed(self, trainer, module, outputs, batch, batch_idx)

    monkeypatch.setattr(stopping.StopConditions, "on_train_batch_end", signal_in_epoch)
    run = Run.create(tmp_path, "signalled")
    result = fit(cfg, run, data)
    assert result.stopped_because == "signal SIGTERM" and not result.completed
    rows = [int(r["epoch"]) for r in read_csv(run.file("history.csv"))]
    assert rows == ([1, 2] if at_last_batch else [1])
    monkeypatch.undo()
    result = fit(cfg, run, data, resume=True)
    assert result.completed
    assert final_figures(run.path) == final_figures(reference_run.path)


def test_a_slurm_signal_inside_a_csv_save_does_not_write_the_file_twice_at_once(tmp_path):
    """Lightning's SIGUSR1 handler finalizes the loggers wherever the main thread is.

    Landing inside the CSV logger's save, a nested save wrote metrics.csv under the one it
    interrupted and ended a SLURM test run with "dict contains fields not in fieldnames".
    """
    from seglab.engine.fit import SignalSafeCSVLogger

    logger = SignalSafeCSVLogger(tmp_path, name="logs", version="")
    writer = logger.experiment
    real_save, inside, depth = writer.save, [], [0]

    def save_hit_by_the_signal() -> None:
        depth[0] += 1
        inside.append(depth[0])
        if len(inside) == 1:
            logger.finalize("finished")  # what Lightning's handler does, mid-save
        real_save()
        depth[0] -= 1

    writer.save = save_hit_by_the_signal
    logger.log_metrics({"train_loss": 0.5}, step=0)
    logger.save()
    logger.log_metrics({"train_loss": 0.4, "val_iou": 0.7}, step=1)
    logger.save()
    assert inside == [1, 1]  # never two writes of the file at once
    rows = read_csv(tmp_path / "logs" / "metrics.csv")
    assert [(r["step"], r["train_loss"], r["val_iou"]) for r in rows] == [
        ("0", "0.5", ""),
        ("1", "0.4", "0.7"),
    ]
