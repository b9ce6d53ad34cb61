"""``fit(cfg, run, data)``: train a model with Lightning, robustly, and keep the best weights.

Lightning does devices, precision, accumulation, checkpointing and DDP; the
callbacks here add the history file, the NaN and collapse guards, the time
budget and signal handling, and exact mid-epoch resume.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from torch import nn
from torch.utils.data import DataLoader

from seglab.config import Config, parse_duration
from seglab.data.datasets import ImageDataset, train_dataset
from seglab.data.prepare import PreparedData
from seglab.engine.callbacks import (
    BestCheckpoint,
    HistoryWriter,
    LastCheckpoint,
    TopCheckpoints,
    ValidatedEarlyStopping,
    WeightEMA,
)
from seglab.engine.checkpoint_io import SafeCheckpointIO
from seglab.engine.guards import CollapseGuard, NanGuard
from seglab.engine.module import SegModule
from seglab.engine.sampling import DataProgress, EpochIndexed, ResumableSampler
from seglab.engine.stopping import GracefulStop, StopConditions
from seglab.models.ensemble import EpochEnsemble
from seglab.models.hardware import cpu_has_bf16
from seglab.models.io import read_checkpoint
from seglab.models.registry import create_model
from seglab.runs import RUN_DIR_ENV, Run

log = logging.getLogger("seglab")
LAST = "last.ckpt"


@dataclass
class FitResult:
    model: nn.Module  # with the kept weights loaded (train.checkpoint.keep, .ensemble)
    best_epoch: int | None
    best_val_iou: float | None
    epochs_run: int
    seconds: float
    stopped_because: str
    completed: bool = True  # False when cut short (budget, signal, NaN guard)
    diagnosis: str | None = None
    warnings: list[str] = field(default_factory=list)
    is_global_zero: bool = True
    best_score: float | None = None  # by train.checkpoint.monitor
    kept_epoch: int | None = None  # of the weights in ``model`` (train.checkpoint.keep)
    ensemble_epochs: list[int] | None = None  # of an EpochEnsemble's members, best first
    precision: str = "32"  # train.precision as run (``auto`` resolved)
    channels_last: bool | None = False  # as run (``auto`` resolved; None: no batch trained)


def fit(
    cfg: Config,
    run: Run,
    data: PreparedData,
    resume: bool = False,
    model: nn.Module | None = None,
) -> FitResult:
    """Train ``cfg.model`` on ``data``; checkpoints and history go into ``run``.

    ``resume=True`` continues from the newest checkpoint in the run folder.
    ``model`` trains that model (e.g. a compressed one, to fine-tune) instead of a new one.
    """
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model = create_model(cfg.model) if model is None else model
    if cfg.train.grad_checkpointing:
        _enable_grad_checkpointing(model)
    module = SegModule(model, cfg)
    precision = resolve_precision(cfg)
    if precision != cfg.train.precision:
        log.info("train.precision %s: %s on this machine", cfg.train.precision, precision)
    patches = train_dataset(cfg, data.train, data.normalization)
    sampler = ResumableSampler(len(patches))
    train_loader = DataLoader(
        EpochIndexed(patches),
        batch_size=cfg.train.batch_size,
        sampler=sampler,
        num_workers=cfg.train.num_workers,
        drop_last=cfg.data.patches_per_epoch >= 2 * cfg.train.batch_size,
    )
    val_loader = DataLoader(
        ImageDataset(data.val, data.normalization),
        batch_size=1,
        num_workers=cfg.train.num_workers,
    )
    ck = cfg.train.checkpoint
    best = BestCheckpoint(
        dirpath=run.checkpoints,
        filename="best",
        monitor=ck.monitor,
        mode=ck.mode,
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )
    history = HistoryWriter(run)
    ema = WeightEMA(cfg.train.ema_decay) if cfg.train.ema_decay else None
    nan_guard = NanGuard(
        run.checkpoints / LAST,
        cfg.train.guard.max_bad_steps,
        cfg.train.guard.max_rollbacks,
        check_gradients=precision != "16-mixed",  # GradScaler skips inf steps itself
        history=history,
        ema=ema,
    )
    collapse = CollapseGuard(cfg.train.guard.collapse_patience)
    on_slurm = SLURMEnvironment.detect()
    stops = StopConditions(
        run.checkpoints / LAST,
        parse_duration(cfg.train.time_budget) if cfg.train.time_budget else None,
        cfg.train.time_budget,
        leave_sigusr1=on_slurm,
        fit_schedule=cfg.schedule.fit_budget,
        val_every=cfg.train.val_every,
        val_from=cfg.train.val_from,
    )
    callbacks: list[L.Callback] = [
        DataProgress(sampler, cfg.train.batch_size, skip_done=_single_process(cfg)),
        history,
        nan_guard,
        collapse,
        *([ema] if ema else []),  # before stops: a mid-epoch checkpoint holds this step's average
        stops,
        best,
        LastCheckpoint(run.checkpoints / LAST),  # after the others: their state is final by then
    ]
    top = None
    if ck.ensemble > 1:
        top = TopCheckpoints(
            dirpath=run.checkpoints,
            filename="top_{epoch}",
            auto_insert_metric_name=False,
            monitor=ck.monitor,
            mode=ck.mode,
            save_top_k=ck.ensemble,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
        )
        callbacks.insert(callbacks.index(best) + 1, top)
    if ck.every_n_epochs:
        callbacks.append(
            ModelCheckpoint(
                dirpath=run.checkpoints,
                filename="epoch_{epoch}",
                every_n_epochs=ck.every_n_epochs,
                save_top_k=-1,
                save_on_train_epoch_end=True,
                enable_version_counter=False,
            )
        )
    early = None
    if cfg.train.early_stopping is not None:
        es = cfg.train.early_stopping
        early = ValidatedEarlyStopping(
            monitor=es.monitor,
            mode=es.mode,
            patience=es.patience,
            min_delta=es.min_delta,
            check_on_train_epoch_end=True,
        )
        callbacks.append(early)
    show_bar = cfg.train.progress and sys.stdout.isatty()
    if show_bar:
        callbacks.append(RichProgressBar(leave=True))
    trainer = L.Trainer(
        max_epochs=cfg.train.epochs,
        accelerator=cfg.train.accelerator,
        devices=cfg.train.devices,
        num_nodes=cfg.train.num_nodes,
        strategy=cfg.train.strategy,
        precision=precision,
        gradient_clip_val=cfg.train.grad_clip,
        accumulate_grad_batches=cfg.train.accumulate_grad_batches,
        callbacks=callbacks,
        plugins=[SafeCheckpointIO()],
        logger=_loggers(cfg, run),
        default_root_dir=run.path,
        enable_progress_bar=show_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    notes = [note for note in (slow_bf16_note(precision, trainer),) if note]
    for note in notes:
        log.warning(note)
    previous_env = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run.path.resolve())  # for DDP processes started by Lightning
    start = time.perf_counter()
    stopped: str | None = None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*number of training batches.*")
        warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended.*")
        warnings.filterwarnings("ignore", message=".*`training_step` returned `None`.*")
        warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed.*")
        try:
            trainer.fit(module, train_loader, val_loader, ckpt_path=_resume_path(run, resume))
        except GracefulStop as stop:
            stopped = stop.reason
        finally:
            if previous_env is None:
                os.environ.pop(RUN_DIR_ENV, None)
            else:
                os.environ[RUN_DIR_ENV] = previous_env
    seconds = time.perf_counter() - start
    kept = run.checkpoints / LAST if ck.keep == "last" else Path(best.best_model_path or "")
    kept_epoch = None
    if kept.is_file():
        weights, kept_epoch = read_checkpoint(kept)
        model.load_state_dict(weights)
    ensemble_epochs = None
    if top is not None and len(top.best_k_models) > 1:  # one validated epoch: that one alone
        model, ensemble_epochs = _epoch_ensemble(model, top.best_k_models, ck.mode)
    stopped = stopped or stops.reason
    if nan_guard.diagnosis:
        stopped = f"non-finite values: {nan_guard.diagnosis}"
    elif early is not None and early.stopped_epoch > 0:
        stopped = f"early stopping: {early.monitor} stopped improving"
    if stopped is None and not trainer.interrupted:
        unused = stops.unused_budget_note(cfg.train.epochs)
        if unused:
            notes.append(unused)
            if trainer.is_global_zero:
                log.warning(unused)
    best_epoch, best_iou = _best(history.rows, "val_iou")
    return FitResult(
        model=model.eval(),
        best_epoch=best_epoch,
        best_val_iou=best_iou,
        epochs_run=len(history.rows),
        seconds=seconds,
        stopped_because=stopped or ("interrupted" if trainer.interrupted else "max_epochs"),
        completed=stopped is None or stopped.startswith("early stopping"),
        diagnosis=nan_guard.diagnosis,
        warnings=notes + list(collapse.warnings),
        is_global_zero=trainer.is_global_zero,
        best_score=float(best.best_model_score) if best.best_model_score is not None else None,
        kept_epoch=kept_epoch,
        ensemble_epochs=ensemble_epochs,
        precision=precision,
        channels_last=module.channels_last,
    )


def _epoch_ensemble(
    model: nn.Module, scores: dict[str, torch.Tensor], mode: str
) -> tuple[EpochEnsemble, list[int]]:
    """The checkpoints ``scores`` names (path -> monitored value), best first, as one
    :class:`EpochEnsemble` of copies of ``model``; and their epochs (from 1)."""
    ranked = sorted(scores, key=lambda path: float(scores[path]), reverse=mode == "max")
    members, epochs = [], []
    for path in ranked:
        weights, epoch = read_checkpoint(path)
        member = copy.deepcopy(model)
        member.load_state_dict(weights)
        members.append(member.eval())
        epochs.append(epoch)
    return EpochEnsemble(members).eval(), epochs


def resolve_precision(cfg: Config) -> str:
    """``train.precision`` with ``auto`` made concrete for the device the run will use.

    ``auto`` is bf16-mixed on a CUDA GPU that supports bfloat16 and on a CPU with bfloat16
    instructions (on the 2-core CI machine a U-Net training step is 1.7x faster,
    ``bench/precision_step.py``), 16-mixed on an older CUDA GPU, and 32 elsewhere (MPS, a
    CPU that would emulate bfloat16).
    """
    precision, accelerator = cfg.train.precision, cfg.train.accelerator
    if precision != "auto":
        return precision
    cuda = torch.cuda.is_available()
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and cuda):
        return "bf16-mixed" if cuda and torch.cuda.is_bf16_supported() else "16-mixed"
    if accelerator == "mps" or (accelerator == "auto" and torch.backends.mps.is_available()):
        return "32"
    return "bf16-mixed" if cpu_has_bf16() else "32"


def slow_bf16_note(precision: str, trainer: L.Trainer) -> str | None:
    """A warning when bf16-mixed runs on a CPU that has to emulate bfloat16."""
    if precision != "bf16-mixed" or not isinstance(trainer.accelerator, CPUAccelerator):
        return None
    if cpu_has_bf16():
        return None
    return (
        "train.precision is bf16-mixed but this CPU has no bfloat16 instructions "
        "(AVX512-BF16 or AMX): it is emulated, slower than float32; set train.precision: 32 or auto"
    )


def _single_process(cfg: Config) -> bool:
    return cfg.train.devices * cfg.train.num_nodes == 1 and not _launched_by_torchrun()


def _launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


class SignalSafeCSVLogger(CSVLogger):
    """Lightning's CSV logger, whose ``save`` a signal handler cannot re-enter.

    Under SLURM, Lightning's SIGUSR1 handler calls ``finalize`` (so ``save``) on every
    logger. When the signal lands while the main thread is inside ``save``, rewriting
    ``logs/metrics.csv`` for a new column, the nested save writes the same file under it;
    the next save then finds a row with more fields than the header and the run ends with
    ``ValueError: dict contains fields not in fieldnames``. The nested call is skipped
    instead: the save it interrupted writes the same metrics.
    """

    _saving = False

    def save(self) -> None:
        if self._saving:
            return
        self._saving = True
        try:
            super().save()
        finally:
            self._saving = False


def _loggers(cfg: Config, run: Run) -> list[Logger]:
    loggers: list[Logger] = [SignalSafeCSVLogger(run.path, name="logs", version="")]
    if cfg.train.logger == "tensorboard":
        if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
            loggers.append(TensorBoardLogger(run.path, name="tensorboard", version=""))
        else:
            log.warning("train.logger is tensorboard but it is not installed; CSV only")
    return loggers


def _resume_path(run: Run, resume: bool) -> str | None:
    """The newest of last.ckpt and Lightning's SLURM hpc_ckpt_*.ckpt, when resuming."""
    if not resume:
        return None
    candidates = [run.checkpoints / LAST, *run.path.glob("hpc_ckpt_*.ckpt")]
    existing = [p for p in candidates if p.is_file()]
    if not existing:
        log.warning("no checkpoint in %s yet: training from the start", run.checkpoints)
        return None
    newest = max(existing, key=lambda p: p.stat().st_mtime)
    log.info("resuming from %s", newest)
    return str(newest)


def _enable_grad_checkpointing(model: nn.Module) -> None:
    setter = getattr(model, "set_grad_checkpointing", None)
    if callable(setter):
        setter(True)
    else:
        log.warning("train.grad_checkpointing: %s does not support it", type(model).__name__)


def _best(rows: list[dict], key: str) -> tuple[int | None, float | None]:
    scored = [r for r in rows if r.get(key) is not None]
    if not scored:
        return None, None
    row = max(scored, key=lambda r: r[key])
    return row["epoch"], row[key]


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
