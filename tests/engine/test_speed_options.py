"""channels_last and torch.compile: they change how training runs, never what it learns."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from seglab.config import load_config
from seglab.data.prepare import prepare_data
from seglab.engine.fit import fit
from seglab.engine.module import SegModule
from seglab.errors import SeglabError
from seglab.models.io import read_checkpoint
from seglab.models.registry import create_model
from seglab.runs import Run, read_csv


def _train(tmp_path, tiny_overrides, *extra: str) -> tuple[list[dict], Run]:
    cfg = load_config(None, [*tiny_overrides, "train.accelerator=cpu", "train.epochs=2", *extra])
    run = Run.create(tmp_path, "speed")
    fit(cfg, run, prepare_data(cfg))
    return read_csv(run.file("history.csv")), run


@pytest.fixture(scope="module")
def eager_history(tmp_path_factory):
    from conftest import TINY

    rows, _ = _train(tmp_path_factory.mktemp("eager"), TINY)
    return rows


def _same_learning(rows: list[dict], reference: list[dict]) -> None:
    for key in ("train_loss", "val_loss", "val_iou"):
        got = [float(r[key]) for r in rows]
        want = [float(r[key]) for r in reference]
        assert got == pytest.approx(want, abs=1e-4), key


def test_channels_last_batches_and_weights_are_nhwc(tiny_config):
    cfg = tiny_config.model_copy(deep=True)
    cfg.train.channels_last = True
    module = SegModule(create_model(cfg.model), cfg)
    conv = next(m for m in module.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    images, masks = torch.zeros(2, 1, 16, 16), torch.zeros(2, 16, 16, dtype=torch.long)
    out, _ = module.on_after_batch_transfer((images, masks), 0)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_channels_last_training_learns_what_the_default_learns(
    tmp_path, tiny_overrides, eager_history
):
    rows, _ = _train(tmp_path, tiny_overrides, "train.channels_last=true")
    _same_learning(rows, eager_history)


def _dropout_net() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.Dropout(0.5),
        torch.nn.Conv2d(4, 1, 1),
    )


@pytest.mark.parametrize("cl_faster", [True, False])
def test_the_probe_keeps_the_faster_format_and_leaves_model_and_rng_alone(monkeypatch, cl_faster):
    from contextlib import nullcontext

    from seglab.engine import memory_format

    real_step = memory_format._step_seconds

    def fake_step(net, x, context):  # noqa: ANN001
        real_step(net, x, context)  # really runs: BN statistics, dropout
        nhwc = x.is_contiguous(memory_format=torch.channels_last)
        return 0.001 if nhwc == cl_faster else 0.002

    monkeypatch.setattr(memory_format, "_step_seconds", fake_step)
    net = _dropout_net().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    images = torch.randn(2, 2, 8, 8)  # 2 channels: one would be contiguous in both formats
    rng = torch.get_rng_state()
    probe = memory_format.probe_memory_format(net, images, nullcontext)
    assert probe.channels_last is cl_faster
    assert (probe.channels_last_ms < probe.contiguous_ms) is cl_faster
    assert ("channels-last (" if cl_faster else "contiguous (") in probe.describe()
    # copies were trained and timed, not the run's model; the run's random numbers are intact
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert net[0].weight.is_contiguous() and all(p.grad is None for p in net.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


def _fake_steps(monkeypatch, seconds):  # noqa: ANN001
    """Replace the probe's timer: ``seconds(channels_last, n)`` for the n-th step of a format."""
    from seglab.engine import memory_format

    calls: list[bool] = []

    def fake_step(net, x, context):  # noqa: ANN001, ARG001
        nhwc = x.is_contiguous(memory_format=torch.channels_last)
        calls.append(nhwc)
        return seconds(nhwc, calls.count(nhwc) - 1)

    monkeypatch.setattr(memory_format, "_step_seconds", fake_step)
    return memory_format, calls


def test_a_few_slow_steps_do_not_flip_the_probe(monkeypatch):
    # channels-last is 10 % faster, but the machine stalls during its first two timed steps
    # (after 2 warm-up steps): the median of three steps per format would pick contiguous
    from contextlib import nullcontext

    def seconds(nhwc, n):  # noqa: ANN001
        if nhwc and n in (2, 3):
            return 0.06
        return 0.018 if nhwc else 0.020

    memory_format, calls = _fake_steps(monkeypatch, seconds)
    net, images = _dropout_net().train(), torch.randn(2, 2, 8, 8)
    probe = memory_format.probe_memory_format(net, images, nullcontext)
    assert probe.channels_last and probe.rounds == 12
    assert probe.ratio == pytest.approx(0.9)
    assert "median of 12 rounds" in probe.describe()
    # the order within a round alternates, so neither format always runs first
    timed = calls[4:]
    assert timed[:4] == [False, True, True, False]
    # three rounds, about what the probe timed before, would keep the slower format
    calls.clear()
    short = memory_format.probe_memory_format(net, images, nullcontext, max_rounds=3)
    assert short.rounds == 3 and not short.channels_last


def test_the_probe_stops_after_max_seconds_of_slow_steps(monkeypatch):
    from contextlib import nullcontext

    memory_format, calls = _fake_steps(monkeypatch, lambda nhwc, n: 1.0 if nhwc else 1.2)
    net, images = _dropout_net().train(), torch.randn(2, 2, 8, 8)
    probe = memory_format.probe_memory_format(net, images, nullcontext, max_seconds=5.0)
    assert probe.rounds == 3 and len(calls) == 2 * (2 + 3)  # 3 rounds hold 6.6 s
    assert probe.channels_last
    assert (probe.contiguous_ms, probe.channels_last_ms) == (1200.0, 1000.0)


def test_channels_last_must_be_true_false_or_auto():
    assert load_config(None, ["train.channels_last=auto"]).train.channels_last == "auto"
    with pytest.raises(SeglabError, match="channels_last"):
        load_config(None, ["train.channels_last=fastest"])


@pytest.mark.parametrize("cl_faster", [True, False])
def test_auto_training_learns_what_the_default_learns_in_the_format_it_chose(
    tmp_path, tiny_overrides, eager_history, monkeypatch, cl_faster
):
    """The format is set after the optimiser exists: it must go on updating the weights."""
    from seglab.engine import module as module_file
    from seglab.engine.memory_format import FormatProbe

    chosen = []

    def probe(model, images, context):  # noqa: ANN001
        chosen.append(images.shape)
        cl_ms = 1.0 if cl_faster else 3.0
        return FormatProbe(contiguous_ms=2.0, channels_last_ms=cl_ms, ratio=cl_ms / 2.0, rounds=3)

    monkeypatch.setattr(module_file, "probe_memory_format", probe)
    cfg = load_config(
        None,
        [*tiny_overrides, "train.accelerator=cpu", "train.epochs=2", "train.channels_last=auto"],
    )
    run = Run.create(tmp_path, "auto")
    result = fit(cfg, run, prepare_data(cfg))
    assert len(chosen) == 1 and chosen[0][0] == cfg.train.batch_size  # once, on a training batch
    assert result.channels_last is cl_faster
    # a 3x3 conv with several input channels (the stem's single channel fits both formats)
    conv = next(
        m
        for m in result.model.modules()
        if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1 and m.kernel_size == (3, 3)
    )
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) is cl_faster
    _same_learning(read_csv(run.file("history.csv")), eager_history)


@pytest.mark.slow
def test_compiled_training_learns_what_eager_learns_and_saves_plain_weights(
    tmp_path, tiny_overrides, eager_history
):
    from torch._dynamo.utils import counters

    counters.clear()
    rows, run = _train(tmp_path, tiny_overrides, "train.compile=true")
    assert counters["stats"]["unique_graphs"] > 0  # the model really went through dynamo
    _same_learning(rows, eager_history)
    # the checkpoint holds the plain model's names (no torch.compile wrapper prefix)
    state, _ = read_checkpoint(run.checkpoints / "last.ckpt")
    plain = create_model(load_config(None, tiny_overrides).model)
    plain.load_state_dict(state)


def test_bf16_training_on_a_cpu_without_bf16_says_it_is_emulated(
    tmp_path, tiny_overrides, monkeypatch
):
    import seglab.engine.fit as fit_module

    monkeypatch.setattr(fit_module, "cpu_has_bf16", lambda: False)
    cfg = load_config(None, [*tiny_overrides, "train.accelerator=cpu", "train.precision=bf16"])
    run = Run.create(tmp_path, "bf16")
    result = fit(cfg, run, prepare_data(cfg))
    assert any("emulated" in w and "train.precision: 32" in w for w in result.warnings)
    assert result.precision == "bf16-mixed"
    losses = [float(r["train_loss"]) for r in read_csv(run.file("history.csv"))]
    assert losses and all(math.isfinite(x) for x in losses)


def test_bf16_note_only_where_bf16_is_emulated(monkeypatch):
    import lightning as L

    import seglab.engine.fit as fit_module

    trainer = L.Trainer(accelerator="cpu", precision="bf16-mixed", logger=False)
    monkeypatch.setattr(fit_module, "cpu_has_bf16", lambda: True)
    assert fit_module.slow_bf16_note("bf16-mixed", trainer) is None
    monkeypatch.setattr(fit_module, "cpu_has_bf16", lambda: False)
    assert "emulated" in fit_module.slow_bf16_note("bf16-mixed", trainer)
    assert fit_module.slow_bf16_note("32", trainer) is None


@pytest.mark.parametrize(("native", "want"), [(True, "bf16-mixed"), (False, "32")])
def test_auto_precision_on_a_cpu_is_bf16_only_where_the_cpu_has_it(
    tiny_config, monkeypatch, native, want
):
    import seglab.engine.fit as fit_module

    monkeypatch.setattr(fit_module, "cpu_has_bf16", lambda: native)
    cfg = tiny_config.model_copy(deep=True)
    cfg.train.accelerator = "cpu"
    cfg.train.precision = "auto"
    assert fit_module.resolve_precision(cfg) == want
    for explicit in ("32", "bf16-mixed"):  # an explicit choice is kept, even a slow one
        cfg.train.precision = explicit
        assert fit_module.resolve_precision(cfg) == explicit


def test_auto_precision_on_a_cuda_gpu(tiny_config, monkeypatch):
    import seglab.engine.fit as fit_module

    cfg = tiny_config.model_copy(deep=True)
    cfg.train.accelerator = "gpu"
    cfg.train.precision = "auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert fit_module.resolve_precision(cfg) == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert fit_module.resolve_precision(cfg) == "16-mixed"


def test_the_format_probe_counts_against_the_budget_but_not_as_a_slow_epoch(monkeypatch):
    # epochs of two 5 s batches, a 100 s budget (95 s less the reserve) and a 20 s probe
    # in the first batch: the run stops after an epoch when less than 1.1 x the slowest
    # epoch is left. Taken for the epoch's time, the probe (30 s "epochs") would stop it
    # after 5 epochs, or cut the fourth short; left out of the budget, after 9
    from seglab.engine import stopping

    trainer = SimpleNamespace(current_epoch=0, max_epochs=1000, should_stop=False)
    module = SimpleNamespace(format_probe_s=0.0)
    clock = [0.0]
    monkeypatch.setattr(stopping.time, "monotonic", lambda: clock[0])
    stops = stopping.StopConditions(Path("unused.ckpt"), budget_s=100.0)
    stops.setup(trainer, module, "fit")
    stops.teardown(trainer, module, "fit")
    while not trainer.should_stop:
        stops.on_train_epoch_start(trainer, module)
        for last in (False, True):
            if clock[0] == 0.0:
                clock[0] += 20.0
                module.format_probe_s = 20.0
            clock[0] += 5.0
            progress = SimpleNamespace(is_last_batch=last)
            trainer.fit_loop = SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress))
            stops.on_train_batch_end(trainer, module, None, None, 0)
        stops.on_train_epoch_end(trainer, module)
        trainer.current_epoch += 1
    # epochs end at 30, 40, ..., 90 s: after 80 s 15 s are left (>= 11), after 90 s 5
    assert trainer.current_epoch == 7
    assert module.format_probe_s == 0.0  # taken out once
