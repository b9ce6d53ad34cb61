"""Milliseconds per training step (forward, loss, backward, AdamW) in float32 and bf16-mixed.

    PYTHONPATH=src python bench/precision_step.py [--model unet] [--batch 8] [--size 128]
        [--in-channels 1] [--steps 12] [--threads N] [--device cpu|cuda]

bf16-mixed is ``torch.autocast`` with bfloat16, as Lightning runs it. Each precision is
warmed up for 3 steps, then the two alternate step by step so that a change in the
machine's load falls on both; the median is printed. On a CPU without bfloat16
instructions (AVX512-BF16 or AMX) bf16 is emulated, which the output says.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch.nn import functional as F

from seglab.config import ModelConfig
from seglab.engine.fit import cpu_has_bf16
from seglab.models.registry import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unet")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--in-channels", type=int, default=1)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    shape = (args.batch, args.in_channels, args.size, args.size)
    x = torch.randn(shape, device=device)
    y = (torch.rand((args.batch, 1, args.size, args.size), device=device) > 0.9).float()
    nets, optims = {}, {}
    for precision in ("32", "bf16-mixed"):
        cfg = ModelConfig(name=args.model, in_channels=args.in_channels)
        nets[precision] = create_model(cfg).to(device).train()
        optims[precision] = torch.optim.AdamW(nets[precision].parameters(), lr=1e-3)

    def step(precision: str) -> float:
        net, opt = nets[precision], optims[precision]
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16-mixed"):
            logits = net(x)
        loss = F.binary_cross_entropy_with_logits(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for precision in nets:
        for _ in range(3):
            step(precision)
    times: dict[str, list[float]] = {p: [] for p in nets}
    for _ in range(args.steps):
        for precision in nets:
            times[precision].append(step(precision))
    where = f"{platform.machine()} {torch.get_num_threads()} threads, {device.type}"
    if device.type == "cpu":
        where += f", cpu bf16 instructions: {'yes' if cpu_has_bf16() else 'no (emulated)'}"
    params = sum(p.numel() for p in nets["32"].parameters())
    print(f"{args.model} ({params / 1e6:.2f} M), batch {shape}, torch {torch.__version__}; {where}")
    ms = {p: 1000 * statistics.median(t) for p, t in times.items()}
    for precision, value in ms.items():
        print(f"  {precision:>10}: {value:7.1f} ms per step (median of {args.steps})")
    print(f"  float32 / bf16-mixed = {ms['32'] / ms['bf16-mixed']:.2f}")


if __name__ == "__main__":
    main()
