"""``train.channels_last: auto``: time training steps in both memory formats, keep the faster.

Which format is faster depends on the model and the machine, not on a rule one can
write down: on one 2-core CI CPU (bf16-mixed, AMX) this probe timed the 8-channel U-Net
of ``configs/lucchi.yaml`` at 115-144 ms a step contiguous and 146-156 ms channels-last,
and SMP's ``Unet(resnet18)`` on the same patches at 264-416 ms and 204-298 ms; on the CI
CPU of earlier sessions channels-last made the same U-Net's steps 1.19x faster
(``bench/precision_step.py``; docs/benchmarks.md, "Lucchi on a faster CPU").

The probe runs on copies of the model with the run's first training batch, inside the
run's precision context, and leaves the random number generators as it found them, so
the run learns exactly what it would have learnt with the chosen format set by hand.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class FormatProbe:
    """What the probe measured, and the choice.

    ``ratio`` is the median over the timed rounds of a round's channels-last step time
    divided by its contiguous one: below 1, channels-last is faster. The two medians of
    the step times are for the record.
    """

    contiguous_ms: float
    channels_last_ms: float
    ratio: float
    rounds: int

    @property
    def channels_last(self) -> bool:
        return self.ratio < 1.0

    def describe(self) -> str:
        chosen = "channels-last" if self.channels_last else "contiguous"
        return (
            f"train.channels_last auto: {chosen} (a training step took "
            f"{self.contiguous_ms:.1f} ms contiguous, {self.channels_last_ms:.1f} ms "
            f"channels-last on this machine, median of {self.rounds} rounds; "
            f"channels-last/contiguous {self.ratio:.3f})"
        )


def probe_memory_format(
    model: nn.Module,
    images: torch.Tensor,
    context: Callable[[], AbstractContextManager],
    warmup: int = 2,
    min_rounds: int = 3,
    max_rounds: int = 12,
    max_seconds: float = 5.0,
) -> FormatProbe:
    """Time forward and backward of ``model`` on ``images`` in both memory formats.

    Each format gets its own copy of the model in training mode. After ``warmup`` steps of
    each (the first builds the kernels), rounds of one step in each format follow, the
    format that goes first alternating, until ``max_rounds`` rounds or, after at least
    ``min_rounds``, ``max_seconds`` of timed steps. The choice is the median over rounds of
    the channels-last/contiguous ratio: the two steps of a round are neighbours in time,
    so a slow spell of the machine (another process, a clock change) falls on both and a
    spike in a few rounds does not move the median. With the median of three steps per
    format the probe picked the format 13 % slower in one of three runs of
    ``configs/lucchi.yaml`` on a 2-core AVX2 CPU (docs/benchmarks.md). The loss is the
    mean square of the outputs (auxiliary deep-supervision outputs included): what is
    timed is the network, not a particular loss. ``context`` opens the run's autocast
    context.
    """
    device = images.device
    devices = [device] if device.type == "cuda" else []
    times: dict[bool, list[float]] = {False: [], True: []}
    ratios: list[float] = []
    with torch.random.fork_rng(devices=devices):  # dropout in the copies draws numbers
        nets = {}
        inputs = {}
        for channels_last in (False, True):
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            nets[channels_last] = copy.deepcopy(model).train().to(memory_format=fmt)
            inputs[channels_last] = images.detach().contiguous(memory_format=fmt)
        for _ in range(warmup):
            for channels_last in (False, True):
                _step_seconds(nets[channels_last], inputs[channels_last], context)
        timed = 0.0
        for i in range(max_rounds):
            step = {}
            for channels_last in (False, True) if i % 2 == 0 else (True, False):
                step[channels_last] = _step_seconds(
                    nets[channels_last], inputs[channels_last], context
                )
                times[channels_last].append(step[channels_last])
            ratios.append(step[True] / max(step[False], 1e-12))
            timed += step[False] + step[True]
            if i + 1 >= min_rounds and timed >= max_seconds:
                break
    return FormatProbe(
        contiguous_ms=round(1000 * statistics.median(times[False]), 1),
        channels_last_ms=round(1000 * statistics.median(times[True]), 1),
        ratio=statistics.median(ratios),
        rounds=len(ratios),
    )


def _step_seconds(
    net: nn.Module, x: torch.Tensor, context: Callable[[], AbstractContextManager]
) -> float:
    cuda = x.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(x.device)
    start = time.perf_counter()
    with context():
        out = net(x)
        outputs = [out, *(getattr(net, "aux_outputs", None) or [])]
        loss = sum(o.float().square().mean() for o in outputs)
    loss.backward()
    if cuda:
        torch.cuda.synchronize(x.device)
    seconds = time.perf_counter() - start
    net.zero_grad(set_to_none=True)
    return seconds
