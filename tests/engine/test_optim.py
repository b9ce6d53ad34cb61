"""Optimisers, schedules and early stopping."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from torch import nn

from seglab.config import Config, load_config
from seglab.data.prepare import prepare_data
from seglab.engine.fit import fit
from seglab.engine.optim import (
    EpochFactor,
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


@pytest.mark.parametrize("name", ["adamw", "adam"])
def test_adam_fuses_on_a_cpu_and_makes_the_same_update(name):
    torch.manual_seed(0)

    def make() -> nn.Module:  # no bias before the norm: its gradient would be rounding noise,
        # which Adam's division by its own size turns into full steps of either sign
        return nn.Sequential(nn.Conv2d(2, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Conv2d(4, 1, 1))

    net, twin = make(), make()
    twin.load_state_dict(net.state_dict())
    cfg = cfg_with(f"optim.name={name}", "optim.weight_decay=0.05")
    fused = build_optimizer(net, cfg)
    assert all(group["fused"] for group in fused.param_groups)
    unfused = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    reference = unfused(
        parameter_groups(twin, 0.05), lr=cfg.optim.lr, betas=cfg.optim.betas, foreach=False
    )
    x = torch.randn(4, 2, 8, 8)
    for _ in range(3):
        for model, optimizer in ((net, fused), (twin, reference)):
            optimizer.zero_grad()
            model(x).square().mean().backward()
            optimizer.step()
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(net[0].weight, torch.zeros(())), "the weights moved"


def test_sgd_and_integer_parameters_are_not_fused():
    net = nn.Linear(3, 2)
    assert not build_optimizer(net, cfg_with("optim.name=sgd")).param_groups[0].get("fused")
    half = nn.Linear(3, 2).to(torch.float16)
    assert build_optimizer(half, cfg_with()).param_groups[0]["fused"]
    assert build_optimizer(nn.Linear(3, 2).to("meta"), cfg_with()).param_groups[0]["fused"] in (
        None,
        False,
    )


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


def test_a_schedule_fitted_to_fewer_epochs_decays_within_them(tmp_path):
    cfg = cfg_with("train.epochs=100", "schedule.warmup_epochs=2", "schedule.min_lr=0.0")
    factor = lr_factor(cfg)
    assert factor(99) > 0 and factor(10) > 0.9  # over 100 epochs
    assert factor.fit_to(10) and not factor.fit_to(10)
    assert factor(1) == pytest.approx(2 / 3)  # the warmup is untouched
    assert factor(2) == 1.0 and factor(10) == 0.0 and factor(6) == pytest.approx(0.5)
    assert factor.fit_to(1000) and factor.epochs == 100  # never past train.epochs
    assert factor.fit_to(0) and factor.epochs == 3  # never inside the warmup
    assert not EpochFactor(cfg_with("schedule.name=constant")).decays

    # the horizon travels in the scheduler's state, through a weights-only checkpoint
    model = nn.Linear(2, 1)
    sched = build_scheduler(build_optimizer(model, cfg), cfg)["scheduler"]
    sched.lr_lambdas[0].fit_to(20)
    torch.save(sched.state_dict(), tmp_path / "s.pt")
    fresh = build_scheduler(build_optimizer(model, cfg), cfg)["scheduler"]
    fresh.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert fresh.lr_lambdas[0].epochs == 20 and fresh.lr_lambdas[0](20) == 0.0


def test_the_budget_estimate_follows_the_epoch_times(monkeypatch):
    from types import SimpleNamespace

    from seglab.engine import stopping

    cfg = cfg_with("train.epochs=1000")
    sched = build_scheduler(build_optimizer(nn.Linear(2, 1), cfg), cfg)["scheduler"]
    trainer = SimpleNamespace(
        current_epoch=0,
        max_epochs=1000,
        should_stop=False,
        lr_scheduler_configs=[SimpleNamespace(scheduler=sched)],
    )
    clock = [0.0]
    monkeypatch.setattr(stopping.time, "monotonic", lambda: clock[0])
    stops = stopping.StopConditions(None, budget_s=100.0, fit_schedule=True)  # reserve 5 s
    stops.setup(trainer, None, "fit")
    stops.teardown(trainer, None, "fit")  # the signal handlers are not needed here
    times = [10.0, 10.0, 20.0, 20.0]
    for epoch, seconds in enumerate(times):
        trainer.current_epoch = epoch
        stops.on_train_epoch_start(trainer, None)
        clock[0] += seconds
        sched.step()  # Lightning steps the epoch scheduler before on_train_epoch_end
        stops.on_train_epoch_end(trainer, None)
        # the next epoch trains at the rate of the new horizon, not one epoch later
        factor = sched.lr_lambdas[0]
        assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(
            cfg.optim.lr * factor(epoch + 1)
        )
        left = 95.0 - clock[0]
        slowest, typical = max(times[: epoch + 1]), statistics.median(times[: epoch + 1])
        expected = epoch + 1 + int((left - 1.1 * slowest) // typical) + 1
        assert sched.lr_lambdas[0].epochs == expected and not trainer.should_stop
    # 60 s done, 35 s left: a margin of 22 s and epochs of 15 s leave room for one more
    assert sched.lr_lambdas[0].epochs == 5


@pytest.mark.parametrize("rank_zero", [(True, None), (False, 7)])
def test_under_ddp_every_rank_follows_rank_zero_on_the_budget(monkeypatch, rank_zero):
    # each rank times its own epochs; if they disagreed, one rank would stop (and the
    # others wait for it forever) or train at another rate
    from types import SimpleNamespace

    from seglab.engine import stopping

    cfg = cfg_with("train.epochs=1000")
    sched = build_scheduler(build_optimizer(nn.Linear(2, 1), cfg), cfg)["scheduler"]
    sent = []

    def broadcast(value, src):
        sent.append((value, src))
        return rank_zero

    def reduce(flags, reduce_op):  # no rank received a signal
        sent.append((flags.tolist(), reduce_op))
        return flags

    trainer = SimpleNamespace(
        current_epoch=0,
        max_epochs=1000,
        should_stop=False,
        world_size=2,
        is_global_zero=False,
        strategy=SimpleNamespace(broadcast=broadcast, reduce=reduce, root_device="cpu"),
        lr_scheduler_configs=[SimpleNamespace(scheduler=sched)],
    )
    clock = [0.0]
    monkeypatch.setattr(stopping.time, "monotonic", lambda: clock[0])
    stops = stopping.StopConditions(None, budget_s=100.0, fit_schedule=True)
    stops.on_train_epoch_start(trainer, None)
    clock[0] += 10.0
    stops.on_train_epoch_end(trainer, None)
    # this rank's own view: go on, 9 epochs in all; then no signal here, and the budget is
    # not this rank's to call (only rank 0's clock counts)
    assert sent == [((False, 9), 0), ([0.0, 0.0], "max")]
    assert trainer.should_stop is rank_zero[0]
    assert sched.lr_lambdas[0].epochs == (1000 if rank_zero[1] is None else 7)
