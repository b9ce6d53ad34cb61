"""How often ``train.channels_last: auto`` keeps the slower memory format, quiet or disturbed.

    PYTHONPATH=src python bench/format_probe.py configs/lucchi.yaml [--repeats 16]
        [--busy 0.5] [--max-rounds 3] [--threads 2] [--truth-rounds 20]

Builds the config's model (float32) and one random batch of its patch size and batch
size, then:

1. the truth: ``--truth-rounds`` rounds of one real training step (the config's loss with
   deep supervision, backward, AdamW) in each format, the format that goes first
   alternating; the median over rounds of the channels-last/contiguous ratio;
2. ``--repeats`` probes (``seglab.engine.memory_format.probe_memory_format``) with its
   defaults and, alternating with them, the same number capped at ``--max-rounds`` rounds
   (3 rounds: about the steps the probe timed before it was made adaptive), each counted
   wrong when it picks the other format than the truth.

``--busy D`` starts, for each probe, a competing process that spins in bursts of 0.05-0.4 s
with pauses of the same length (about a ``D`` share of one core in all: 0.5 bursts and
pauses alike, 1.0 no pauses) for as long as the probe may take: a disturbed machine, like
one where an editor, a browser or another job wakes up now and then.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext

import torch
from bench_cli import guarded

from seglab.config import load_config
from seglab.engine.memory_format import probe_memory_format
from seglab.engine.module import SegModule
from seglab.models.registry import create_model

_SPIN = """
import random, sys, time
random.seed(int(sys.argv[1])); duty = float(sys.argv[2]); end = time.time() + float(sys.argv[3])
while time.time() < end:
    burst = random.uniform(0.05, 0.4); start = time.time()
    while time.time() - start < burst:
        pass
    time.sleep(burst * (1 - duty) / duty if duty < 1 else 0)
"""


def truth_ratio(model, cfg, images, masks, rounds: int) -> tuple[float, float, float]:  # noqa: ANN001
    """(median channels-last/contiguous ratio, median ms contiguous, channels-last)."""
    nets, opts, inputs = {}, {}, {}
    for cl in (False, True):
        fmt = torch.channels_last if cl else torch.contiguous_format
        # the training module: its loss, deep supervision's auxiliary terms included
        nets[cl] = SegModule(copy.deepcopy(model).to(memory_format=fmt), cfg).train()
        opts[cl] = torch.optim.AdamW(nets[cl].parameters(), 1e-3)
        inputs[cl] = images.contiguous(memory_format=fmt)
    times: dict[bool, list[float]] = {False: [], True: []}
    ratios = []
    for i in range(rounds + 2):
        step = {}
        for cl in (False, True) if i % 2 == 0 else (True, False):
            start = time.perf_counter()
            module = nets[cl]
            loss = module.loss_fn(module(inputs[cl]), masks) + module.deep_supervision_loss(masks)
            opts[cl].zero_grad(set_to_none=True)
            loss.backward()
            opts[cl].step()
            step[cl] = time.perf_counter() - start
        if i >= 2:  # the first two rounds warm up
            ratios.append(step[True] / step[False])
            for cl in (False, True):
                times[cl].append(step[cl])
    return (
        statistics.median(ratios),
        1000 * statistics.median(times[False]),
        1000 * statistics.median(times[True]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--repeats", type=int, default=16)
    parser.add_argument("--busy", type=float, default=0.0)
    parser.add_argument("--max-rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--truth-rounds", type=int, default=20)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_config(args.config)
    model = create_model(cfg.model)
    size = cfg.data.patch_size
    size = size if isinstance(size, int) else size[0]
    images = torch.randn(cfg.train.batch_size, cfg.model.in_channels, size, size)
    masks = (torch.rand(cfg.train.batch_size, size, size) > 0.9).long()
    print(
        f"{args.config}: {cfg.model.name}, batch {tuple(images.shape)}, float32, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    ratio, contiguous, channels_last = truth_ratio(model, cfg, images, masks, args.truth_rounds)
    truth = ratio < 1
    print(
        f"truth over {args.truth_rounds} rounds of real steps: contiguous {contiguous:.1f} ms, "
        f"channels-last {channels_last:.1f} ms, ratio {ratio:.3f}: "
        f"{'channels-last' if truth else 'contiguous'} is faster"
    )
    variants = {
        "adaptive (defaults)": {},
        f"{args.max_rounds} rounds": {"max_rounds": args.max_rounds},
    }
    wrong = dict.fromkeys(variants, 0)
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for k in range(args.repeats):
        for name, kwargs in variants.items():
            spin = None
            if args.busy > 0:
                spin = subprocess.Popen(
                    [sys.executable, "-c", _SPIN, str(k), str(args.busy), "30"],
                )
                time.sleep(0.05)
            start = time.perf_counter()
            probe = probe_memory_format(model, images, nullcontext, **kwargs)
            seconds[name].append(time.perf_counter() - start)
            if spin is not None:
                spin.kill()
                spin.wait()
            wrong[name] += probe.channels_last != truth
            print(f"  {k:2d} {name:20s} {probe.describe().split('auto: ')[1]}", flush=True)
    for name in variants:
        print(
            f"{name}: wrong {wrong[name]} of {args.repeats}, "
            f"median {statistics.median(seconds[name]):.1f} s a probe"
        )


if __name__ == "__main__":
    guarded(main)
