"""Guards: skip non-finite steps and roll back (NanGuard); warn on collapsed predictions."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging

from seglab.engine.optim import scale_learning_rate

log = logging.getLogger("seglab")


class NanGuard(L.Callback):
    """Detects a non-finite loss or gradient at the step it happens and skips that step.

    After ``max_bad_steps`` bad steps in a row the weights and optimiser state
    go back to ``last.ckpt`` (or to the start, before any checkpoint) with the
    learning rate halved; after ``max_rollbacks`` such rollbacks training stops
    and :attr:`diagnosis` says which tensor went bad at which step.
    """

    def __init__(
        self,
        checkpoint: Path,
        max_bad_steps: int,
        max_rollbacks: int,
        check_gradients: bool = True,
        history: Any = None,
        ema: WeightAveraging | None = None,
    ) -> None:
        self.checkpoint = checkpoint
        self.ema = ema  # a rollback restores the average too
        self.max_bad_steps = max_bad_steps
        self.max_rollbacks = max_rollbacks
        self.check_gradients = check_gradients
        self.history = history
        self.bad_in_row = 0
        self.bad_total = 0
        self.rollbacks = 0
        self.diagnosis: str | None = None
        self._grad_problem: str | None = None
        self._start_state: dict[str, Any] | None = None

    @property
    def state_key(self) -> str:
        return "NanGuard"

    def state_dict(self) -> dict[str, Any]:
        return {"bad_total": self.bad_total, "rollbacks": self.rollbacks}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.bad_total = int(state_dict.get("bad_total", 0))
        self.rollbacks = int(state_dict.get("rollbacks", 0))

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        start = {
            "state_dict": module.state_dict(),
            "optimizer_states": [trainer.optimizers[0].state_dict()],
        }
        if self.ema is not None:  # the same keys as in a checkpoint
            self.ema.on_save_checkpoint(trainer, module, start)
        self._start_state = copy.deepcopy(start)

    def on_before_optimizer_step(self, trainer, module, optimizer) -> None:  # noqa: ANN001
        if getattr(module, "bad_loss", None):  # DDP ran a zero backward for a skipped loss
            _drop_gradients(module)
            return
        if not self.check_gradients:
            return
        named = [(n, p.grad) for n, p in module.named_parameters() if p.grad is not None]
        if not named:
            return
        norms = torch.stack(torch._foreach_norm([g for _, g in named]))
        if bool(torch.isfinite(norms).all()):
            return
        first = next(n for (n, _), v in zip(named, norms, strict=True) if not torch.isfinite(v))
        self._grad_problem = f"gradient of {first} is not finite at step {trainer.global_step}"
        _drop_gradients(module)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        problem = getattr(module, "bad_loss", None) or self._grad_problem
        self._grad_problem = None
        if problem is None:
            self.bad_in_row = 0
            return
        self.bad_in_row += 1
        self.bad_total += 1
        if self.history is not None:
            self.history.skipped_steps += 1
        where = f"epoch {trainer.current_epoch + 1}, batch {batch_idx}"
        log.warning("nan guard: skipped a step (%s; %s)", problem, where)
        if self.bad_in_row >= self.max_bad_steps:
            self._roll_back(trainer, module, f"{problem} ({where})")

    def _roll_back(self, trainer: L.Trainer, module: L.LightningModule, problem: str) -> None:
        self.bad_in_row = 0
        if self.rollbacks >= self.max_rollbacks:
            self.diagnosis = (
                f"{self.max_bad_steps} non-finite steps in a row after {self.rollbacks} "
                f"rollback(s); last: {problem}"
            )
            log.error("nan guard: stopping training: %s", self.diagnosis)
            trainer.should_stop = True
            return
        if self.checkpoint.is_file():
            state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
            source = self.checkpoint.name
        else:
            state, source = self._start_state, "the initial weights"
        if self.ema is not None:
            # the raw weights from "current_model_state", the average from "state_dict"
            self.ema.on_load_checkpoint(trainer, module, state)
        else:
            module.load_state_dict(state["state_dict"])
        optimizer = trainer.optimizers[0]
        optimizer.load_state_dict(state["optimizer_states"][0])
        scheduler = (
            trainer.lr_scheduler_configs[0].scheduler if trainer.lr_scheduler_configs else None
        )
        scale_learning_rate(optimizer, scheduler, 0.5)
        self.rollbacks += 1
        log.warning(
            "nan guard: %d bad steps in a row (%s); rolled back to %s with the learning rate "
            "halved to %.2e",
            self.max_bad_steps,
            problem,
            source,
            optimizer.param_groups[0]["lr"],
        )


def _drop_gradients(module: L.LightningModule) -> None:
    for param in module.parameters():
        param.grad = None  # the optimiser skips parameters without a gradient


class CollapseGuard(L.Callback):
    """Warns when validation predictions are one class everywhere for ``patience`` validations."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.constant_in_row = 0
        self.warnings: list[str] = []

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        constant = getattr(module, "last_val", {}).get("constant_prediction", 0.0)
        self.constant_in_row = self.constant_in_row + 1 if constant else 0
        if self.constant_in_row == self.patience:
            message = (
                f"collapse guard: predictions have been a single class everywhere (e.g. all "
                f"background) for {self.patience} validations in a row, up to epoch "
                f"{trainer.current_epoch + 1}; try focal_dice or class weights, a lower "
                f"learning rate, or check the masks"
            )
            self.warnings.append(message)
            log.warning(message)
