"""Patches per second the data path delivers vs. what the training step consumes (CPU).

Delivery: the training DataLoader (seeded patches, foreground oversampling) plus
the batched on-device augmentation (seglab.data.augment), as the trainer runs it.
Consumption: forward + backward + optimiser step of the configured model on
batches of the same shape. The data path should be at least 5x faster, so the
model never waits for data.

    PYTHONPATH=src python bench/data_throughput.py [CONFIG] [--set k=v ...] [--batches N]
        [--threads N]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import torch
from bench_cli import guarded
from torch.utils.data import DataLoader

from seglab.config import load_config
from seglab.data.augment import build_augment
from seglab.data.datasets import train_dataset
from seglab.data.prepare import prepare_data
from seglab.losses import create_loss
from seglab.models.registry import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=None)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.overrides)
    torch.manual_seed(cfg.seed)

    start = time.perf_counter()
    data = prepare_data(cfg)
    load_s = time.perf_counter() - start
    dataset = train_dataset(cfg, data.train, data.normalization)
    loader = DataLoader(dataset, batch_size=cfg.train.batch_size, num_workers=cfg.train.num_workers)
    augment = build_augment(cfg.data.augment, cfg.data.ignore_index)

    def delivered() -> int:
        n = 0
        for i, (images, masks) in enumerate(loader):
            if augment is not None:
                images, masks = augment(images, masks)
            n += images.shape[0]
            if i + 1 >= args.batches:
                break
        return n

    delivered()  # warm-up
    start = time.perf_counter()
    n_delivered = delivered()
    deliver_rate = n_delivered / (time.perf_counter() - start)

    model = create_model(cfg.model).train()
    loss_fn = create_loss(cfg.loss, cfg.model.num_classes, cfg.data.ignore_index)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr)
    images, masks = next(iter(loader))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(images), masks).backward()
        optimizer.step()

    step()  # warm-up
    n_steps = max(3, args.batches // 4)
    start = time.perf_counter()
    for _ in range(n_steps):
        step()
    consume_rate = n_steps * images.shape[0] / (time.perf_counter() - start)

    aug = "off" if augment is None else "on"
    print(f"command: {' '.join(['python', *sys.argv])}")
    print(
        f"machine: {platform.machine()} CPU, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"data: {cfg.data.source}, {len(data.train)} train images, loaded in {load_s:.1f}s; "
        f"patch {cfg.data.patch_size}, batch {cfg.train.batch_size}, "
        f"{cfg.train.num_workers} workers, augmentation {aug}"
    )
    print(f"delivered: {deliver_rate:9.1f} patches/s  (loader + on-device augmentation)")
    print(f"consumed:  {consume_rate:9.1f} patches/s  (train step of {cfg.model.name})")
    ratio = deliver_rate / consume_rate
    print(f"ratio:     {ratio:9.1f}x  ({'OK' if ratio >= 5 else 'BELOW'} the 5x target)")


if __name__ == "__main__":
    guarded(main)
