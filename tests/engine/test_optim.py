"""Optimisers, schedules and early stopping."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from seglab.config import Config, load_config
from seglab.data.prepare import prepare_data
from seglab.engine.fit import fit
from seglab.engine.optim import (
    WarmupPlateau,
    build_optimizer,
    build_scheduler,
    lr_factor,
    parameter_groups,
    scale_learning_rate,
)
from seglab.runs import Run


def cfg_with(*overrides: str) -> Config:
    return load_config(None, list(overrides))


def test_no_weight_decay_on_norms_and_biases():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 1, 1))
    decay, no_decay = parameter_groups(model, 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[2].weight)}
    assert len(no_decay["params"]) == 4  # two conv biases, norm weight and bias


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_each_optimiser_steps(name):
    model = nn.Linear(3, 1)
    opt = build_optimizer(model, cfg_with(f"optim.name={name}"))
    before = model.weight.detach().clone()
    model(torch.ones(2, 3)).sum().backward()
    opt.step()
    assert not torch.equal(before, model.weight)


def test_warmup_then_cosine_and_poly_reach_min_lr():
    for name in ("cosine", "warmup_cosine", "poly"):
        cfg = cfg_with(f"schedule.name={name}", "train.epochs=10", "schedule.warmup_epochs=2")
        f = lr_factor(cfg)
        assert f(0) < f(1) < f(2) == 1.0
        assert f(9) < f(5) < f(2)
        assert f(10) == pytest.approx(cfg.schedule.min_lr / cfg.optim.lr)
    poly = lr_factor(cfg_with("schedule.name=poly", "train.epochs=10", "schedule.power=1.0"))
    floor = 1e-5 / 3e-3
    assert poly(5) == pytest.approx(floor + (1 - floor) * 0.5)
    cosine = lr_factor(cfg_with("train.epochs=10"))
    assert cosine(5) == pytest.approx(floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi / 2)))
    assert lr_factor(cfg_with("schedule.name=constant"))(7) == 1.0


def test_plateau_warms_up_then_reduces_when_the_metric_stalls():
    cfg = cfg_with(
        "schedule.name=plateau",
        "schedule.warmup_epochs=2",
        "schedule.patience=0",
        "schedule.factor=0.5",
    )
    model = nn.Linear(1, 1)
    opt = build_optimizer(model, cfg)
    entry = build_scheduler(opt, cfg)
    sched = entry["scheduler"]
    assert isinstance(sched, WarmupPlateau) and entry["monitor"] == "val_loss"
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(4):
        sched.step(1.0)  # never improves
        lrs.append(opt.param_groups[0]["lr"])
    peak = cfg.optim.lr
    assert lrs[:3] == pytest.approx([peak / 3, 2 * peak / 3, peak])
    assert lrs[3] == pytest.approx(peak) and lrs[4] == pytest.approx(peak / 2)


def test_scaling_the_rate_also_scales_the_schedule():
    cfg = cfg_with("train.epochs=10")
    model = nn.Linear(1, 1)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg)["scheduler"]
    scale_learning_rate(opt, sched, 0.5)
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * cfg.optim.lr * lr_factor(cfg)(1))


def test_early_stopping_on_a_logged_metric(tmp_path, tiny_overrides):
    cfg = load_config(
        None,
        [
            *tiny_overrides,
            "train.accelerator=cpu",
            "train.epochs=20",
            "train.early_stopping={monitor: val_loss, mode: min, patience: 1, min_delta: 10.0}",
        ],
    )
    result = fit(cfg, Run.create(tmp_path, "es"), prepare_data(cfg))
    assert result.epochs_run == 2  # no improvement of 10 after the first: stop after one more
    assert result.stopped_because.startswith("early stopping") and result.completed


def test_a_bad_time_budget_is_a_config_error():
    from seglab.errors import SeglabError

    with pytest.raises(SeglabError, match="train.time_budget"):
        cfg_with("train.time_budget=soon")
    assert cfg_with("train.time_budget=2h30m").train.time_budget == "2h30m"
