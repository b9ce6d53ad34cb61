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
