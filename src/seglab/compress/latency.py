"""CPU latency measured, not estimated: warm-up, then the median of timed repeats."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


def median_ms(call: Callable[[], Any], warmup: int = 3, repeats: int = 20) -> float:
    """The median wall time of ``call()`` in milliseconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def interleaved_median_ms(
    calls: list[Callable[[], Any]], warmup: int = 3, repeats: int = 20
) -> list[float]:
    """Median ms of each call, timed in turns (call 1, call 2, ..., call 1, ...).

    Taking turns spreads any change in the machine's load over all the calls alike,
    so their ratios stay fair on a shared machine.
    """
    for call in calls:
        for _ in range(warmup):
            call()
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(max(1, repeats)):
        for i, call in enumerate(calls):
            start = time.perf_counter()
            call()
            times[i].append((time.perf_counter() - start) * 1e3)
    return [statistics.median(t) for t in times]


def forward_call(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """A no-grad forward of ``x`` through ``model`` in eval mode, to time."""
    model = model.eval()

    def call() -> None:
        with torch.inference_mode():
            model(x)

    return call


def torch_latency_ms(
    model: nn.Module, x: torch.Tensor, warmup: int = 3, repeats: int = 20
) -> float:
    model = model.eval()

    def call() -> None:
        with torch.inference_mode():
            model(x)

    return median_ms(call, warmup, repeats)


@contextmanager
def fixed_threads(threads: int | None) -> Iterator[int]:
    """Run the block with ``threads`` intra-op torch threads (None: as now); yields the count."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward of ``x`` (torch's FLOP counter / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval()(x)
    return counter.get_total_flops() // 2
