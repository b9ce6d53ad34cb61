"""Clean stops: a time budget and SIGTERM / SIGINT / SIGUSR1, each leaving a checkpoint.

A stop inside an epoch saves ``last.ckpt`` at the current batch and raises
:class:`GracefulStop`, which ``fit`` turns into a normal return; a resumed run
then skips the batches already trained (see ``ResumableSampler``). A stop
decided at the end of an epoch lets Lightning save the end-of-epoch checkpoint;
so does one noticed at an epoch's last batch, after that epoch's validation (a
signal then waits for one validation pass, a budget overruns by one).

With ``val_every`` > 1 or ``val_from`` > 0 it also plans which epochs validate: every
``val_every``-th once ``val_from`` of the run has passed, the last of ``max_epochs``,
and, under a time budget, the first and every epoch after which the budget may not
leave room for another, so that the epoch a budget ends with is validated and can be
the best checkpoint.

Under DDP every rank stops at the same step: a signal any rank received, and the time
budget as rank 0's clock sees it, are agreed on by all ranks at each check.
"""

from __future__ import annotations

import logging
import signal
import statistics
import threading
import time
from pathlib import Path

import lightning as L
import torch

from seglab.engine.optim import EpochFactor

log = logging.getLogger("seglab")

STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGUSR1")


class GracefulStop(Exception):  # noqa: N818 - a stop, not an error
    """Raised after a mid-epoch checkpoint was written, to leave ``trainer.fit`` at once."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StopConditions(L.Callback):
    """Stops on a time budget (before it runs out) or on a signal, with a checkpoint."""

    def __init__(
        self,
        checkpoint: Path,
        budget_s: float | None = None,
        budget_text: str | None = None,
        leave_sigusr1: bool = False,
        fit_schedule: bool = False,
        val_every: int = 1,
        val_from: float = 0.0,
    ) -> None:
        self.checkpoint = checkpoint
        self.budget_s = budget_s
        self.budget_text = budget_text or (f"{budget_s:g}s" if budget_s else None)
        self.leave_sigusr1 = leave_sigusr1  # on SLURM Lightning saves and requeues on SIGUSR1
        self.fit_schedule = fit_schedule  # shorten a decaying schedule to the budget
        self.val_every = val_every  # validate every n-th epoch (and the last ones)
        self.val_from = val_from  # and only after this fraction of the budget or epochs
        self.reason: str | None = None
        self.unused: tuple[float, int] | None = None  # seconds and epochs after max_epochs
        self._signal: str | None = None
        self._start = time.monotonic()
        self._epoch_start = self._start
        self._slowest_batch = 0.0
        self._slowest_epoch = 0.0
        self._epoch_times: list[float] = []
        self._train_times: list[float] = []  # the epochs' times less their validation
        self._val_times: list[float] = []
        self._val_start = self._start
        self._val_seconds = 0.0  # the current epoch's validation
        self._last_batch_end = self._start
        self._previous: dict[int, object] = {}

    # ------------------------------------------------------------------ signals

    def setup(self, trainer: L.Trainer, module: L.LightningModule, stage: str) -> None:
        self._start = time.monotonic()
        self._install()

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # Lightning registers its own SIGTERM handler after setup (it would exit without a
        # checkpoint at the next batch): ours goes back in front of it
        self._install()

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for name in STOP_SIGNALS:
            if name == "SIGUSR1" and self.leave_sigusr1:
                continue
            signum = getattr(signal, name, None)
            if signum is not None:
                previous = signal.signal(signum, self._on_signal)
                self._previous.setdefault(signum, previous)

    def teardown(self, trainer: L.Trainer, module: L.LightningModule, stage: str) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signal = signal.Signals(signum).name

    # ------------------------------------------------------------------ checks

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._epoch_start = self._last_batch_end = time.monotonic()
        self._val_seconds = 0.0
        if self.plans_validation:
            (validate,) = _from_rank_zero(trainer, (self.validates(trainer, self._epoch_start),))
            # Lightning validates when (epoch + 1) % check_val_every_n_epoch == 0
            trainer.check_val_every_n_epoch = 1 if validate else trainer.current_epoch + 2

    @property
    def plans_validation(self) -> bool:
        """Whether some epochs skip validation (``val_every`` > 1 or ``val_from`` > 0)."""
        return self.val_every > 1 or self.val_from > 0

    def validates(self, trainer: L.Trainer, now: float) -> bool:
        """Whether the epoch starting now validates (with ``val_every`` > 1 or ``val_from``).

        Every ``val_every``-th epoch once ``val_from`` of the run has passed (that fraction
        of the time budget or of ``max_epochs``, whichever comes first) and the last of
        ``max_epochs`` do. With ``val_from`` > 0 so does the first, so that a validation
        that fails, fails at once. Under a time budget so do the first (how long an epoch
        takes is not known yet) and any after which the time left may not allow another:
        the run stops after an epoch when less than 1.1 x its slowest epoch is left, so an
        epoch starting with less than 2.1 x that may be the last.
        """
        epoch = trainer.current_epoch
        max_epochs = trainer.max_epochs or 0
        if epoch + 1 >= max_epochs or (epoch == 0 and self.val_from > 0):
            return True
        if self.budget_s is not None and (
            self._slowest_epoch == 0.0 or self._left(now) < 2.1 * self._slowest_epoch
        ):
            return True
        started = epoch >= self.val_from * max_epochs or (
            self.budget_s is not None and now - self._start >= self.val_from * self.budget_s
        )
        return started and (epoch + 1) % self.val_every == 0

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._val_start = time.monotonic()

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._val_seconds = time.monotonic() - self._val_start

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        now = time.monotonic()
        self._leave_out_probe(module)
        self._slowest_batch = max(self._slowest_batch, now - self._last_batch_end)
        self._last_batch_end = now
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            # a checkpoint between the epoch's last step and its validation resumes wrongly
            # in Lightning (it skips that validation and the next epoch's): on_train_epoch_end
            # stops once the validation ran, and Lightning saves the end-of-epoch checkpoint
            return
        out_of_time = self.budget_s is not None and self._left(now) < 2 * self._slowest_batch
        signalled, out_of_time = self._agreed(trainer, out_of_time)
        if signalled is not None:
            self._stop_now(trainer, f"signal {signalled}")
        if out_of_time:
            self._stop_now(trainer, f"time budget {self.budget_text} (cut short)")

    def _leave_out_probe(self, module: L.LightningModule | None) -> None:
        """Take the memory-format probe's seconds out of this batch's and epoch's times.

        ``train.channels_last: auto`` times both formats inside the first training batch
        (``SegModule.format_probe_s``). Those seconds count against the budget, through the
        clock, but the stop rules and the fitted schedule take the slowest batch and epoch
        for what a later one may take, which no later one repeats.
        """
        probe = getattr(module, "format_probe_s", 0.0)
        if probe:
            module.format_probe_s = 0.0
            self._last_batch_end += probe
            self._epoch_start += probe

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        now = time.monotonic()
        last_epoch = now - self._epoch_start
        self._slowest_epoch = max(self._slowest_epoch, last_epoch)
        out_of_time, planned = False, None
        if self.budget_s is not None:
            self._record(last_epoch)
            if trainer.current_epoch + 1 < (trainer.max_epochs or 0):
                out_of_time = self._left(now) < 1.1 * self._slowest_epoch
                if not out_of_time and self.fit_schedule:
                    planned = self._planned_epochs(trainer, now)
                # every rank's clock differs a little: rank 0 decides for all, so that no
                # rank stops or trains at another rate alone
                out_of_time, planned = _from_rank_zero(trainer, (out_of_time, planned))
            else:  # the last of max_epochs: what the budget had left
                self.unused = (max(self._left(now), 0.0), self._more_epochs(now))
        signalled, _ = self._agreed(trainer, False)
        if signalled is not None:
            self._stop_at_epoch_end(trainer, f"signal {signalled}")
        elif out_of_time:
            self._stop_at_epoch_end(trainer, f"time budget {self.budget_text} (cut short)")
        elif planned is not None:
            self._fit_schedule(trainer, planned)

    def _record(self, seconds: float) -> None:
        """Keep an epoch's time, and apart its training and validation parts."""
        self._epoch_times.append(seconds)
        self._train_times.append(max(seconds - self._val_seconds, 0.0))
        if self._val_seconds:
            self._val_times.append(self._val_seconds)

    def _typical_epoch(self) -> float:
        """The median epoch so far; with ``val_every`` > 1 the mean of whole cycles.

        Epochs with and without validation alternate then: the median of such a mix is
        either kind, and a mean over a part of a cycle swings from epoch to epoch. The
        mean is over the last whole cycles of ``val_every`` epochs after the first (which
        also warms up and, under a budget, always validates).
        """
        times = self._epoch_times
        if self.val_every == 1:
            return statistics.median(times)
        later = times[1:] or times
        whole = len(later) // self.val_every * self.val_every
        return statistics.mean(later[len(later) - whole :] if whole else later)

    def _planned_epochs(self, trainer: L.Trainer, now: float) -> int:
        """The epochs the run will have trained when the budget ends it.

        An epoch starts while the time left is at least 1.1 x the slowest epoch so far; with
        every further epoch as long as the typical one so far (``_typical_epoch``), that
        allows ``more`` of them. With ``val_from`` > 0 the epochs before validation starts
        take the median training time, and those after it that plus a ``val_every``-th of
        the median validation.
        """
        slack = self._left(now) - 1.1 * self._slowest_epoch
        if self.val_from > 0:  # called under a budget only
            train = max(statistics.median(self._train_times), 1e-6)
            val = statistics.median(self._val_times) if self._val_times else 0.0
            plain = min(max(self.val_from * self.budget_s - (now - self._start), 0.0), slack)
            more = int(plain / train + (slack - plain) / (train + val / self.val_every)) + 1
        else:
            more = self._more_epochs(now)
        return trainer.current_epoch + 1 + more

    def _more_epochs(self, now: float) -> int:
        """How many more epochs of the typical length the stop rule would start from now."""
        slack = self._left(now) - 1.1 * self._slowest_epoch
        return int(slack // max(self._typical_epoch(), 1e-6)) + 1 if slack >= 0 else 0

    def unused_budget_note(self, max_epochs: int) -> str | None:
        """A warning when ``train.epochs``, not the budget, ended a run with room to spare.

        Only when at least one more epoch would have started and the time left is at least
        a tenth of the budget: the fitted schedule ended with the epochs, so that time was
        lost, and a higher ``train.epochs`` would have trained through it.
        """
        if self.unused is None or self.budget_s is None:
            return None
        seconds, epochs = self.unused
        if epochs < 1 or seconds < 0.1 * self.budget_s:
            return None
        return (
            f"train.epochs: {max_epochs} ended the run with {seconds:.0f} s of the time budget "
            f"{self.budget_text} unused, room for about {epochs} more epoch"
            f"{'s' if epochs > 1 else ''}: raise train.epochs to train for the whole budget"
        )

    def _fit_schedule(self, trainer: L.Trainer, planned: int) -> None:
        """Let a decaying schedule end after ``planned`` epochs (see ``_planned_epochs``)."""
        for config in trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            factors = getattr(scheduler, "lr_lambdas", [])
            changed = False
            for factor in factors:
                if isinstance(factor, EpochFactor) and factor.decays and factor.fit_to(planned):
                    changed = True
                    log.info(
                        "learning-rate schedule now ends after epoch %d: the time budget %s "
                        "leaves room for about %d more",
                        factor.epochs,
                        self.budget_text,
                        planned - trainer.current_epoch - 1,
                    )
            if changed:
                # Lightning steps epoch schedulers before this hook: the rate of the next
                # epoch is already set, so it is set again with the new horizon
                groups = scheduler.optimizer.param_groups
                for group, base, factor in zip(groups, scheduler.base_lrs, factors, strict=True):
                    group["lr"] = base * factor(scheduler.last_epoch)

    def _agreed(self, trainer: L.Trainer, out_of_time: bool) -> tuple[str | None, bool]:
        """The signal any rank received (or None), and rank 0's ``out_of_time``.

        Under DDP a rank that stopped alone would leave the others waiting in the next
        gradient all-reduce, and a signal may reach one process only (``kill`` of the
        launching process, a node's scheduler): one all-reduce per call makes every rank
        stop at the same step. A collective: every rank must call it at the same point.
        """
        if getattr(trainer, "world_size", 1) <= 1:
            return self._signal, out_of_time
        number = signal.Signals[self._signal].value if self._signal else 0
        mine = float(out_of_time) if trainer.is_global_zero else 0.0
        flags = torch.tensor([float(number), mine], device=trainer.strategy.root_device)
        number, out_of_time = trainer.strategy.reduce(flags, reduce_op="max").tolist()
        return (signal.Signals(int(number)).name if number else None), bool(out_of_time)

    def _left(self, now: float) -> float:
        reserve = min(0.05 * self.budget_s, 120.0)  # checkpoint, model folder and report
        return self.budget_s - reserve - (now - self._start)

    def _stop_at_epoch_end(self, trainer: L.Trainer, reason: str) -> None:
        self.reason = reason
        trainer.should_stop = True
        log.warning("stopping after epoch %d: %s", trainer.current_epoch + 1, reason)

    def _stop_now(self, trainer: L.Trainer, reason: str) -> None:
        self.reason = reason
        trainer.save_checkpoint(self.checkpoint, weights_only=False)  # full state, to resume
        log.warning(
            "stopping in epoch %d at step %d: %s; checkpoint %s",
            trainer.current_epoch + 1,
            trainer.global_step,
            reason,
            self.checkpoint,
        )
        raise GracefulStop(reason)


def _from_rank_zero(trainer: L.Trainer, value: tuple) -> tuple:
    """``value`` as rank 0 has it (a collective call: every rank must make it)."""
    if getattr(trainer, "world_size", 1) <= 1:
        return value
    return tuple(trainer.strategy.broadcast(value, src=0))
