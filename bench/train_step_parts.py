"""Where a training step's time goes: augmentation, forward, loss, backward, optimiser (CPU).

    PYTHONPATH=src python bench/train_step_parts.py [CONFIG] [--set k=v ...] [--steps 40]
        [--threads N]

The step is the one ``seglab run`` takes with CONFIG: the on-device augmentation
(``data.augment``), the model (``model.*``, deep supervision's auxiliary losses included),
the loss (``loss.*``), the optimiser with its parameter groups (``optim.*``), the precision
``train.precision`` resolves to on this machine and the memory format (``auto``: timed on
the first batch, as in training). It runs on one random batch of the configured shape
(``train.batch_size`` patches of ``data.patch_size`` px; no data is read), so that the
figures do not depend on a dataset. Lightning's own overhead per step and the data loader
are not in it (``bench/engine_overhead.py`` and ``bench/data_throughput.py`` time those).

Each part is timed with ``time.perf_counter`` around it; after 5 warm-up steps the median
over ``--steps`` steps is printed per part, with its share of the summed medians.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from contextlib import nullcontext

import torch
from bench_cli import guarded

from seglab.config import load_config
from seglab.engine.fit import resolve_precision
from seglab.engine.memory_format import probe_memory_format
from seglab.engine.module import SegModule
from seglab.engine.optim import build_optimizer
from seglab.models.hardware import cpu_has_bf16
from seglab.models.registry import create_model

PARTS = ("augment", "forward", "loss", "backward", "optimiser")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=None)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.steps < 1:
        raise SystemExit(f"--steps must be at least 1, got {args.steps}")
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.overrides)
    if cfg.train.accelerator not in ("auto", "cpu"):
        raise SystemExit(f"train.accelerator is {cfg.train.accelerator}; this script times CPUs")
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"accelerator": "cpu"})})
    torch.manual_seed(cfg.seed)

    precision = resolve_precision(cfg)
    if precision not in ("32", "bf16-mixed"):
        raise SystemExit(f"train.precision {precision} does not run on a CPU; use 32 or auto")
    bf16 = precision == "bf16-mixed"

    def autocast():  # noqa: ANN202 - a context manager
        return torch.autocast("cpu", torch.bfloat16) if bf16 else nullcontext()

    module = SegModule(create_model(cfg.model), cfg).train()
    side, batch = cfg.data.patch_size, cfg.train.batch_size
    images = torch.randn(batch, cfg.model.in_channels, side, side)
    # about a tenth foreground, as in the oversampled patches of a sparse dataset
    masks = (torch.rand(batch, side, side) < 0.1).long()
    if module.channels_last is None:  # train.channels_last: auto
        module.channels_last = probe_memory_format(module.model, images, autocast).channels_last
    if module.channels_last:
        module.model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(module.model, cfg)

    times: dict[str, list[float]] = {part: [] for part in PARTS}
    for i in range(5 + args.steps):
        marks = [time.perf_counter()]
        x, y = (images, masks) if module.augment is None else module._augment(images, masks)
        if module.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        marks.append(time.perf_counter())
        with autocast():
            logits = module(x)
            marks.append(time.perf_counter())
            loss = module.loss_fn(logits, y) + module.deep_supervision_loss(y)
        marks.append(time.perf_counter())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        marks.append(time.perf_counter())
        optimizer.step()
        marks.append(time.perf_counter())
        if i >= 5:
            for part, start, end in zip(PARTS, marks, marks[1:], strict=False):
                times[part].append(end - start)

    medians = {part: statistics.median(values) * 1e3 for part, values in times.items()}
    total = sum(medians.values())
    native = "native" if cpu_has_bf16() else "emulated"
    print(f"command: {' '.join(['python', *sys.argv])}")
    print(
        f"machine: {platform.machine()} CPU, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, bfloat16 {native}"
    )
    print(
        f"step: {cfg.model.name}, batch {batch} x {cfg.model.in_channels} x {side} x {side}, "
        f"{precision}, {'channels-last' if module.channels_last else 'contiguous'}, "
        f"augmentation {'off' if module.augment is None else 'on'}, "
        f"median of {args.steps} steps"
    )
    for part in PARTS:
        print(f"{part:10s} {medians[part]:8.2f} ms  {100 * medians[part] / total:5.1f} %")
    print(f"{'sum':10s} {total:8.2f} ms")


if __name__ == "__main__":
    guarded(main)
