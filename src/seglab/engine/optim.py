"""Optimisers and learning-rate schedules, registered by name.

Every schedule is stepped once per epoch. ``schedule.warmup_epochs`` ramps the
rate linearly up to ``optim.lr`` first, whatever the schedule (plateau too).

The decaying schedules (cosine, warmup_cosine, poly) run over ``train.epochs``. Under a
``train.time_budget`` that cuts the run short, that would stop training with the rate
still near its peak; with ``schedule.fit_budget`` the engine shortens the horizon to the
epochs that fit the budget (:meth:`EpochFactor.fit_to`), re-estimated after every epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau

from seglab.config import Config

# (parameter groups, config, fused) -> optimiser; ``fused`` only where the factory can fuse
OptimizerFactory = Callable[[list[dict[str, Any]], Config, bool], torch.optim.Optimizer]
_OPTIMIZERS: dict[str, OptimizerFactory] = {
    "adamw": lambda groups, cfg, fused: torch.optim.AdamW(
        groups, lr=cfg.optim.lr, betas=cfg.optim.betas, fused=fused or None
    ),
    "adam": lambda groups, cfg, fused: torch.optim.Adam(
        groups, lr=cfg.optim.lr, betas=cfg.optim.betas, fused=fused or None
    ),
    "sgd": lambda groups, cfg, fused: torch.optim.SGD(
        groups, lr=cfg.optim.lr, momentum=cfg.optim.momentum, nesterov=cfg.optim.momentum > 0
    ),
}
_FUSABLE = ("adam", "adamw")


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: weights with decay; norms, biases and other 1-d tensors without."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """The configured optimiser; no weight decay on norms and biases.

    Adam and AdamW take torch's fused implementation (one kernel over all parameters)
    where every parameter is a floating-point tensor on a CPU or CUDA device; it is the
    same update, rounded in another order. For the 0.49 M weights of ``configs/lucchi.yaml``
    a step took 0.52 instead of 1.85 ms on a 2-core CPU (docs/benchmarks.md).
    """
    groups = parameter_groups(model, cfg.optim.weight_decay)
    fused = cfg.optim.name in _FUSABLE and _fusable([p for g in groups for p in g["params"]])
    return _OPTIMIZERS[cfg.optim.name](groups, cfg, fused)


def _fusable(params: list[torch.Tensor]) -> bool:
    return bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params
    )


# --------------------------------------------------------------------------- schedules

DecayFn = Callable[[float, float, float], float]  # (progress, floor, power) -> factor
_DECAYS: dict[str, DecayFn] = {}


def register_decay(*names: str):  # noqa: ANN201 - a decorator
    def decorator(fn: DecayFn) -> DecayFn:
        for name in names:
            _DECAYS[name] = fn
        return fn

    return decorator


@register_decay("cosine", "warmup_cosine")
def _cosine(progress: float, floor: float, power: float) -> float:
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


@register_decay("poly")
def _poly(progress: float, floor: float, power: float) -> float:
    return floor + (1 - floor) * (1 - progress) ** power


@register_decay("constant", "plateau")
def _constant(progress: float, floor: float, power: float) -> float:
    return 1.0


class EpochFactor:
    """Multiplier of ``optim.lr`` at each epoch: linear warmup, then the schedule's decay.

    Its attributes are plain numbers and a name, so LambdaLR's state_dict carries them into
    checkpoints (a horizon shortened to fit a time budget survives a resume).
    """

    def __init__(self, cfg: Config) -> None:
        self.name = cfg.schedule.name
        self.warmup = cfg.schedule.warmup_epochs
        self.epochs = cfg.train.epochs  # the horizon: the decay ends here
        self.max_epochs = cfg.train.epochs
        self.floor = min(cfg.schedule.min_lr / cfg.optim.lr, 1.0)
        self.power = cfg.schedule.power

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup:
            return (epoch + 1) / (self.warmup + 1)
        progress = min((epoch - self.warmup) / max(1, self.epochs - self.warmup), 1.0)
        return _DECAYS[self.name](progress, self.floor, self.power)

    @property
    def decays(self) -> bool:
        return _DECAYS[self.name] is not _constant

    def fit_to(self, epochs: int) -> bool:
        """Let the decay end after ``epochs`` epochs (never past ``train.epochs``, never
        inside the warmup); True when the horizon changed."""
        horizon = min(self.max_epochs, max(epochs, self.warmup + 1))
        changed = horizon != self.epochs
        self.epochs = horizon
        return changed


def lr_factor(cfg: Config) -> EpochFactor:
    """Multiplier of ``optim.lr`` at each epoch: linear warmup, then the schedule's decay."""
    return EpochFactor(cfg)


class WarmupPlateau(ReduceLROnPlateau):
    """ReduceLROnPlateau after a linear warmup; the metric is ignored during warmup."""

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_epochs: int, **kwargs: Any) -> None:
        super().__init__(optimizer, **kwargs)
        self.warmup_epochs = warmup_epochs
        self.epochs_seen = 0
        self.peak_lrs = [group["lr"] for group in optimizer.param_groups]
        self._set_warmup(0)

    def _set_warmup(self, epoch: int) -> None:
        scale = (epoch + 1) / (self.warmup_epochs + 1) if epoch < self.warmup_epochs else 1.0
        for group, peak in zip(self.optimizer.param_groups, self.peak_lrs, strict=True):
            group["lr"] = peak * scale

    def step(self, metrics: float, epoch: int | None = None) -> None:  # type: ignore[override]
        self.epochs_seen += 1
        if self.epochs_seen <= self.warmup_epochs:
            self._set_warmup(self.epochs_seen)
            return
        super().step(metrics)

    def scale_peak(self, factor: float) -> None:
        self.peak_lrs = [lr * factor for lr in self.peak_lrs]


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Config) -> dict[str, Any]:
    """Lightning's ``lr_scheduler`` entry for the configured schedule (stepped per epoch)."""
    s = cfg.schedule
    if s.name == "plateau":
        scheduler = WarmupPlateau(
            optimizer,
            s.warmup_epochs,
            mode=s.mode,
            factor=s.factor,
            patience=s.patience,
            min_lr=s.min_lr,
        )
        return {"scheduler": scheduler, "interval": "epoch", "monitor": s.monitor, "strict": True}
    return {"scheduler": LambdaLR(optimizer, lr_lambda=lr_factor(cfg)), "interval": "epoch"}


def scale_learning_rate(optimizer: torch.optim.Optimizer, scheduler: Any, factor: float) -> None:
    """Multiply the current and the scheduled rates by ``factor`` (NaN-guard rollback)."""
    for group in optimizer.param_groups:
        group["lr"] *= factor
        if "initial_lr" in group:
            group["initial_lr"] *= factor
    if isinstance(scheduler, WarmupPlateau):
        scheduler.scale_peak(factor)
    elif hasattr(scheduler, "base_lrs"):
        scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]
