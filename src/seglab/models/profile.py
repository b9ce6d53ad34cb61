"""Model size and cost: parameters, MACs (torch's FLOP counter) and forward time."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from seglab.config import ModelConfig
from seglab.models.registry import create_model


@dataclass(frozen=True)
class ModelProfile:
    name: str
    parameters: int
    macs: int  # multiply-accumulates of one forward at batch 1
    forward_ms: float | None  # median of timed forwards, None when not timed


def profile_model(
    cfg: ModelConfig, size: int = 256, device: str = "cpu", timing: bool = True, repeats: int = 3
) -> ModelProfile:
    """Parameters, MACs at ``1 x in_channels x size x size`` and forward time of ``cfg``."""
    model = create_model(cfg).to(device).eval()
    x = torch.randn(1, cfg.in_channels, size, size, device=device)
    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            model(x)
        forward_ms = None
        if timing:
            model(x)  # warm-up
            times = []
            for _ in range(repeats):
                _sync(device)
                start = time.perf_counter()
                model(x)
                _sync(device)
                times.append((time.perf_counter() - start) * 1e3)
            forward_ms = statistics.median(times)
    return ModelProfile(
        name=cfg.name,
        parameters=sum(p.numel() for p in model.parameters()),
        macs=counter.get_total_flops() // 2,
        forward_ms=forward_ms,
    )


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
