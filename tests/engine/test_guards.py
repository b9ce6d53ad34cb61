"""NaN guard, collapse guard and time budget, on tiny in-process runs."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from seglab.config import ModelConfig, load_config
from seglab.data.prepare import prepare_data
from seglab.engine import stopping
from seglab.engine.fit import fit
from seglab.models import registry
from seglab.models.registry import create_model
from seglab.runs import Run, read_csv

NAN_STEPS: set[int] = set()  # training forward calls (0-based) that return NaN


class NanInjector(nn.Module):
    """A tiny U-Net whose output is NaN on the training calls listed in NAN_STEPS."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.inner = create_model(cfg.model_copy(update={"name": "unet"}))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        if self.training:
            if self.calls in NAN_STEPS:
                out = out * float("nan")
            self.calls += 1
        return out


class AllBackground(nn.Module):
    """Predicts background everywhere, whatever it learns: a collapsed model."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * 0 - 20 + self.bias.clamp(max=1.0)


@pytest.fixture(autouse=True)
def test_models(monkeypatch):
    """Register the two test models for this module only (removed again afterwards)."""
    registry.available_models()  # import the real families first
    monkeypatch.setitem(registry._MODELS, "test_nan_injector", NanInjector)
    monkeypatch.setitem(registry._MODELS, "test_all_background", AllBackground)


def tiny(tiny_overrides, *extra):
    return load_config(None, [*tiny_overrides, "train.accelerator=cpu", *extra])


def test_an_injected_nan_is_skipped_and_the_run_completes(tmp_path, tiny_overrides, caplog):
    NAN_STEPS.clear()
    NAN_STEPS.update({1})
    cfg = tiny(tiny_overrides, "model.name=test_nan_injector", "train.epochs=2")
    run = Run.create(tmp_path, "nan")
    with caplog.at_level(logging.WARNING, logger="seglab"):
        result = fit(cfg, run, prepare_data(cfg))
    assert result.completed and result.stopped_because == "max_epochs"
    rows = read_csv(run.file("history.csv"))
    assert [int(r["skipped_steps"]) for r in rows] == [1, 0]
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    assert "loss is nan at step 1 (epoch 1" in caplog.text.replace("; epoch", " (epoch")


@pytest.mark.parametrize("extra", [[], ["train.ema_decay=0.9"]])
def test_persistent_nans_roll_back_then_stop_with_a_diagnosis(
    tmp_path, tiny_overrides, caplog, extra
):
    NAN_STEPS.clear()
    NAN_STEPS.update(range(1, 10_000))
    cfg = tiny(
        tiny_overrides,
        *extra,
        "model.name=test_nan_injector",
        "train.epochs=5",
        "data.patches_per_epoch=16",
        "train.guard.max_bad_steps=2",
        "train.guard.max_rollbacks=1",
    )
    run = Run.create(tmp_path, "nan")
    with caplog.at_level(logging.WARNING, logger="seglab"):
        result = fit(cfg, run, prepare_data(cfg))
    NAN_STEPS.clear()
    assert not result.completed
    assert "non-finite" in result.stopped_because and "loss is nan" in result.diagnosis
    assert "halved to 1.50e-03" in caplog.text  # one rollback, the rate halved from 3e-3
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


def test_collapsed_predictions_raise_a_warning(tmp_path, tiny_overrides):
    cfg = tiny(
        tiny_overrides,
        "model.name=test_all_background",
        "train.epochs=2",
        "train.guard.collapse_patience=2",
    )
    result = fit(cfg, Run.create(tmp_path, "collapse"), prepare_data(cfg))
    assert len(result.warnings) == 1 and "single class everywhere" in result.warnings[0]


def test_a_time_budget_stops_cleanly_with_a_checkpoint(tmp_path, tiny_overrides):
    cfg = tiny(tiny_overrides, "train.epochs=10000", "train.time_budget=3s")
    run = Run.create(tmp_path, "budget")
    result = fit(cfg, run, prepare_data(cfg))
    assert not result.completed and "time budget 3s" in result.stopped_because
    assert result.epochs_run < 10000  # stopped long before the epochs ran out
    state = torch.load(run.checkpoints / "last.ckpt", weights_only=True)
    assert state["epoch"] >= 0 and state["state_dict"]


def test_train_epochs_that_end_a_budgeted_run_early_say_so(tmp_path, tiny_overrides):
    # 2 tiny epochs of a 10-minute budget: the epoch cap, not the budget, ended the run
    cfg = tiny(tiny_overrides, "train.epochs=2", "train.time_budget=10m")
    result = fit(cfg, Run.create(tmp_path, "cap"), prepare_data(cfg))
    assert result.completed and result.stopped_because == "max_epochs"
    notes = [note for note in result.warnings if "raise train.epochs" in note]
    assert len(notes) == 1 and notes[0].startswith("train.epochs: 2 ended the run")
    assert "time budget 10m unused" in notes[0]
    room = int(notes[0].split("room for about ")[1].split()[0])
    assert room > 100  # a tiny epoch takes well under a second of the 570 s left


@pytest.mark.parametrize(
    ("unused", "warns"),
    [((100.0, 5), True), ((50.0, 5), False), ((100.0, 0), False), (None, False)],
)
def test_the_unused_budget_note_needs_a_tenth_of_the_budget_and_an_epoch(unused, warns):
    stops = stopping.StopConditions(checkpoint=None, budget_s=600.0, budget_text="10m")
    stops.unused = unused
    note = stops.unused_budget_note(50)
    assert (note is not None) == warns
    if warns:
        assert note.startswith("train.epochs: 50 ended the run with 100 s of the time budget")
        assert "room for about 5 more epochs" in note


class TickingClock:
    """Stands in for ``time`` in seglab.engine.stopping: each reading is ``tick`` s later.

    The budget then counts the stop callback's clock readings (a few per epoch plus one
    per batch), not the machine's speed, so a loaded machine trains as many epochs.
    """

    def __init__(self, tick: float) -> None:
        self.tick = tick
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += self.tick
        return self.now


@pytest.mark.parametrize("fit_budget", [True, False])
def test_a_time_budget_brings_the_cosine_schedule_down_within_it(
    tmp_path, tiny_overrides, fit_budget, monkeypatch
):
    # a cosine over 10000 epochs has barely moved when a 4 s budget ends; fitted to the
    # budget, the rate of the last epoch is close to min_lr
    monkeypatch.setattr(stopping, "time", TickingClock(0.1))
    cfg = tiny(
        tiny_overrides,
        "train.epochs=10000",
        "train.time_budget=4s",
        "optim.lr=0.01",
        "schedule.min_lr=0.0001",
        f"schedule.fit_budget={str(fit_budget).lower()}",
    )
    run = Run.create(tmp_path, "budget")
    result = fit(cfg, run, prepare_data(cfg))
    lrs = [float(row["lr"]) for row in read_csv(run.path / "history.csv")]
    assert not result.completed and len(lrs) >= 4
    if fit_budget:
        assert lrs[-1] < 0.25 * lrs[0]
    else:
        assert lrs[-1] > 0.99 * lrs[0]
