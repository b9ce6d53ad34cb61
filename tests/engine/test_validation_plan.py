"""train.val_every: which epochs validate, and what judges the others."""

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from seglab.config import load_config
from seglab.data.prepare import prepare_data
from seglab.engine.callbacks import BestCheckpoint, ValidatedEarlyStopping
from seglab.engine.fit import fit
from seglab.engine.stopping import StopConditions
from seglab.runs import Run, read_csv

UNUSED = Path("unused.ckpt")  # where a stop inside an epoch would save: none happens here


def test_every_second_epoch_and_the_last_validate_and_only_they_can_be_best(
    tmp_path, tiny_overrides
):
    cfg = load_config(None, [*tiny_overrides, "train.epochs=5", "train.val_every=2"])
    run = Run.create(tmp_path, "every2")
    result = fit(cfg, run, prepare_data(cfg))
    rows = read_csv(run.file("history.csv"))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4", "5"]
    validated = [r["epoch"] for r in rows if r["val_iou"]]
    assert validated == ["2", "4", "5"]
    # the skipped epochs carry no validation figures (not the previous epoch's) but do train
    assert all(not r["val_loss"] and not r["val_dice"] and r["train_loss"] for r in rows[::2][:2])
    best = torch.load(run.checkpoints / "best.ckpt", weights_only=True)
    scores = {int(r["epoch"]): float(r["val_iou"]) for r in rows if r["val_iou"]}
    assert best["epoch"] + 1 in scores
    assert result.best_epoch == max(scores, key=scores.get)
    assert result.best_val_iou == pytest.approx(max(scores.values()))
    assert torch.load(run.checkpoints / "last.ckpt", weights_only=True)["epoch"] == 4


def test_val_from_skips_the_early_epochs_after_the_first(tmp_path, tiny_overrides):
    cfg = load_config(None, [*tiny_overrides, "train.epochs=6", "train.val_from=0.5"])
    run = Run.create(tmp_path, "from_half")
    result = fit(cfg, run, prepare_data(cfg))
    rows = read_csv(run.file("history.csv"))
    assert [r["epoch"] for r in rows if r["val_iou"]] == ["1", "4", "5", "6"]
    scores = {int(r["epoch"]): float(r["val_iou"]) for r in rows if r["val_iou"]}
    assert result.best_epoch == max(scores, key=scores.get)


def test_early_stopping_patience_counts_validations_not_epochs(tmp_path, tiny_overrides):
    # min_delta 1.0: no validation after the first can improve val_iou
    overrides = [
        "train.epochs=9",
        "train.val_every=2",
        "train.early_stopping.patience=2",
        "train.early_stopping.min_delta=1.0",
    ]
    cfg = load_config(None, [*tiny_overrides, *overrides])
    run = Run.create(tmp_path, "early")
    result = fit(cfg, run, prepare_data(cfg))
    # validations after epochs 2, 4 and 6: the third is the second without improvement
    # (judged at the end of every epoch, it would find no val_iou after epoch 1)
    assert result.epochs_run == 6
    assert result.stopped_because.startswith("early stopping")


def _planner(budget_s: float, elapsed_s: float, slowest_epoch_s: float) -> StopConditions:
    stops = StopConditions(UNUSED, budget_s=budget_s, val_every=3)
    stops._start = time.monotonic() - elapsed_s
    stops._slowest_epoch = slowest_epoch_s
    return stops


@pytest.mark.parametrize(
    ("epoch", "elapsed", "slowest", "validates"),
    [
        (2, 10.0, 10.0, True),  # the third epoch: every third validates
        (0, 0.0, 0.0, True),  # the first: how long an epoch takes is not known yet
        (3, 40.0, 10.0, False),  # 55 s left (100 s less a 5 s reserve): room for more
        (3, 73.0, 10.0, False),  # 22 s left: after a 10 s epoch 12 s >= 1.1 x 10 s, one more
        (3, 75.0, 10.0, True),  # 20 s left: after this epoch < 1.1 x 10 s may be left
        (98, 0.0, 1.0, True),  # the last of train.epochs = 99
    ],
)
def test_under_a_budget_the_epochs_that_may_be_the_last_validate(
    epoch, elapsed, slowest, validates
):
    stops = _planner(100.0, elapsed, slowest)
    trainer = SimpleNamespace(current_epoch=epoch, max_epochs=99)
    assert stops.validates(trainer, time.monotonic()) is validates


def test_without_a_budget_only_every_nth_and_the_last_validate():
    stops = StopConditions(UNUSED, val_every=3)
    plan = [stops.validates(SimpleNamespace(current_epoch=e, max_epochs=7), 0.0) for e in range(7)]
    assert plan == [False, False, True, False, False, True, True]


def test_with_val_from_the_first_and_the_epochs_after_that_fraction_validate():
    half = StopConditions(UNUSED, val_from=0.5)
    plan = [half.validates(SimpleNamespace(current_epoch=e, max_epochs=8), 0.0) for e in range(8)]
    assert plan == [True, False, False, False, True, True, True, True]
    every2 = StopConditions(UNUSED, val_every=2, val_from=0.5)
    plan = [every2.validates(SimpleNamespace(current_epoch=e, max_epochs=8), 0.0) for e in range(8)]
    assert plan == [True, False, False, False, False, True, False, True]


@pytest.mark.parametrize(
    ("elapsed", "validates"),
    [(30.0, False), (59.0, False), (60.0, True), (80.0, True)],
)
def test_under_a_budget_val_from_counts_the_budgets_time(elapsed, validates):
    # 100 s budget, val_from 0.6: from 60 s on, or from epoch 60 of 100, whichever is first
    stops = StopConditions(UNUSED, budget_s=100.0, val_from=0.6)
    stops._start = time.monotonic() - elapsed
    stops._slowest_epoch = 5.0
    trainer = SimpleNamespace(current_epoch=3, max_epochs=100)
    assert stops.validates(trainer, time.monotonic()) is validates
    trainer.current_epoch = 60  # past 0.6 of train.epochs: validates whatever the clock says
    assert stops.validates(trainer, time.monotonic()) is True


def test_a_budget_with_val_from_plans_plain_then_validated_epochs(monkeypatch):
    # epochs train 6 s and validate 4 s; a 100 s budget (95 s less the reserve) and
    # val_from 0.5: after the first, plain epochs until 50 s, then validated ones
    from seglab.engine import stopping
    from seglab.engine.callbacks import validation_planned
    from seglab.engine.optim import build_optimizer, build_scheduler

    cfg = load_config(None, ["train.epochs=1000"])
    sched = build_scheduler(build_optimizer(torch.nn.Linear(2, 1), cfg), cfg)["scheduler"]
    trainer = SimpleNamespace(
        current_epoch=0,
        max_epochs=1000,
        should_stop=False,
        sanity_checking=False,
        check_val_every_n_epoch=1,
        lr_scheduler_configs=[SimpleNamespace(scheduler=sched)],
    )
    clock = [0.0]
    monkeypatch.setattr(stopping.time, "monotonic", lambda: clock[0])
    stops = StopConditions(UNUSED, budget_s=100.0, fit_schedule=True, val_from=0.5)
    stops.setup(trainer, None, "fit")
    stops.teardown(trainer, None, "fit")
    validated, horizons = [], []
    while not trainer.should_stop:
        stops.on_train_epoch_start(trainer, None)
        start = clock[0]
        clock[0] += 6.0
        if validation_planned(trainer):
            validated.append(trainer.current_epoch + 1)
            stops.on_validation_start(trainer, None)
            clock[0] += 4.0
            stops.on_validation_end(trainer, None)
        sched.step()
        stops.on_train_epoch_end(trainer, None)
        horizons.append(sched.lr_lambdas[0].epochs)
        assert start < 50.0 or trainer.current_epoch + 1 in validated
        trainer.current_epoch += 1
    # epochs start at 0, 10, 16, ..., 46 (plain from the second to 50 s), 52, 62, 72, 82;
    # after the one ending at 92 less than 1.1 x 10 s is left
    assert trainer.current_epoch == 12
    assert validated == [1, 9, 10, 11, 12]
    # the schedule ends with the last epoch the budget allows, planned so from the first
    assert set(horizons[:-1]) == {12}


def test_the_gated_callbacks_resume_the_state_of_lightnings_own():
    ours = BestCheckpoint(monitor="val_iou", mode="max").state_key
    assert ours == ModelCheckpoint(monitor="val_iou", mode="max").state_key
    ours = ValidatedEarlyStopping(monitor="val_iou", mode="max").state_key
    assert ours == EarlyStopping(monitor="val_iou", mode="max").state_key


def test_the_typical_epoch_averages_whole_cycles_of_validated_and_plain_epochs():
    stops = StopConditions(UNUSED, budget_s=600.0, val_every=2)
    stops._epoch_times = [40.0, 33.0, 23.0]  # warm-up, validated, plain
    assert stops._typical_epoch() == pytest.approx(28.0)
    stops._epoch_times.append(34.0)  # the last whole cycle: plain, validated
    assert stops._typical_epoch() == pytest.approx(28.5)
    stops._epoch_times.append(23.0)
    assert stops._typical_epoch() == pytest.approx((33 + 23 + 34 + 23) / 4)
    stops._epoch_times = [40.0, 33.0]  # less than a cycle: what there is
    assert stops._typical_epoch() == pytest.approx(33.0)
    every_epoch = StopConditions(UNUSED, budget_s=600.0)
    every_epoch._epoch_times = [40.0, 33.0, 23.0]
    assert every_epoch._typical_epoch() == 33.0  # val_every 1 keeps the median
