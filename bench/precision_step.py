"""Milliseconds per training step (forward, loss, backward, AdamW) in float32 and bf16-mixed.

    PYTHONPATH=src python bench/precision_step.py [--model unet] [--batch 8] [--size 128]
        [--in-channels 1] [--steps 12] [--threads N] [--device cpu|cuda]
        [--channels-last] [--deep-supervision] [--base-channels 16] [--depth 4] [--compile]
        [--space-to-depth 1] [--widths 16,32,64,128,256]
        [--head-kernel 1]

``--channels-last`` times each precision twice more, with the model and the batch in
channels-last memory format (``train.channels_last``); ``--deep-supervision`` builds the
model with ``model.deep_supervision`` (its auxiliary heads run; their loss is left out).
``--compile`` times the last variant once more through ``torch.compile`` (what
``train.compile`` does) and prints how long its first step, the compilation, took.

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
from bench_cli import guarded
from torch.nn import functional as F

from seglab.config import ModelConfig
from seglab.models.hardware import cpu_has_bf16
from seglab.models.registry import create_model


def train_step_s(
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    bf16: bool = False,
) -> float:
    """Seconds for one step (forward, BCE loss, backward, optimiser) of ``net`` on ``x``."""
    device = x.device
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
        logits = net(x)
    loss = F.binary_cross_entropy_with_logits(logits.float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unet")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--in-channels", type=int, default=1)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--deep-supervision", action="store_true")
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--space-to-depth", type=int, default=1)  # model.space_to_depth
    # model.widths: channels per level, comma-separated, full resolution first
    parser.add_argument("--widths", default=None, help="e.g. 24,32,64,128,256")
    parser.add_argument("--head-kernel", type=int, default=1)  # model.head_kernel
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    shape = (args.batch, args.in_channels, args.size, args.size)
    x = torch.randn(shape, device=device)
    y = (torch.rand((args.batch, 1, args.size, args.size), device=device) > 0.9).float()
    cfg = ModelConfig(
        name=args.model,
        in_channels=args.in_channels,
        deep_supervision=args.deep_supervision,
        base_channels=args.base_channels,
        depth=args.depth,
        space_to_depth=args.space_to_depth,
        widths=[int(w) for w in args.widths.split(",")] if args.widths else None,
        head_kernel=args.head_kernel,
    )
    variants = ["32", "bf16-mixed"]
    if args.channels_last:
        variants += ["32 channels_last", "bf16-mixed channels_last"]
    if args.compile:
        variants.append(f"{variants[-1]} compiled")
    nets, optims, inputs = {}, {}, {}
    for variant in variants:
        net = create_model(cfg).to(device).train()
        inputs[variant] = x
        if "channels_last" in variant:
            net.to(memory_format=torch.channels_last)
            inputs[variant] = x.contiguous(memory_format=torch.channels_last)
        optims[variant] = torch.optim.AdamW(net.parameters(), lr=1e-3)
        nets[variant] = torch.compile(net) if variant.endswith("compiled") else net
    first_step: dict[str, float] = {}

    def step(variant: str) -> float:
        return train_step_s(
            nets[variant], optims[variant], inputs[variant], y, variant.startswith("bf16")
        )

    for variant in nets:
        first_step[variant] = step(variant)
        for _ in range(2):
            step(variant)
    times: dict[str, list[float]] = {p: [] for p in nets}
    for _ in range(args.steps):
        for variant in nets:
            times[variant].append(step(variant))
    where = f"{platform.machine()} {torch.get_num_threads()} threads, {device.type}"
    if device.type == "cpu":
        where += f", cpu bf16 instructions: {'yes' if cpu_has_bf16() else 'no (emulated)'}"
    params = sum(p.numel() for p in nets["32"].parameters())
    print(f"{args.model} ({params / 1e6:.2f} M), batch {shape}, torch {torch.__version__}; {where}")
    ms = {p: 1000 * statistics.median(t) for p, t in times.items()}
    width = max(len(v) for v in variants)
    for variant, value in ms.items():
        print(f"  {variant:>{width}}: {value:7.1f} ms per step (median of {args.steps})")
    print(f"  float32 / bf16-mixed = {ms['32'] / ms['bf16-mixed']:.2f}")
    if args.channels_last:
        for precision in ("32", "bf16-mixed"):
            ratio = ms[precision] / ms[f"{precision} channels_last"]
            print(f"  {precision}: contiguous / channels_last = {ratio:.2f}")
    if args.compile:
        eager = variants[-2]
        print(
            f"  {eager}: eager / compiled = {ms[eager] / ms[variants[-1]]:.2f} "
            f"(first compiled step, the compilation: {first_step[variants[-1]]:.0f} s)"
        )


if __name__ == "__main__":
    guarded(main)
