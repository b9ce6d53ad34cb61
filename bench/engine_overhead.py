"""Training throughput of ``engine.fit`` versus a minimal hand-written PyTorch loop.

Same model (seeded), same patches, same batch size, same loss and optimiser;
both count training batches only (data loading included, validation not).
The goal is ``fit / hand >= 0.95``: the robustness machinery (NaN guard,
history, signals, checkpoints) must cost almost nothing per step.

    PYTHONPATH=src python bench/engine_overhead.py [--epochs 4] [--patches 96] [--rounds 2]
        [--accelerator cpu]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time

import torch
from bench_cli import guarded
from torch.utils.data import DataLoader

from seglab.config import load_config
from seglab.data.augment import build_augment
from seglab.data.datasets import train_dataset
from seglab.data.prepare import prepare_data
from seglab.engine.fit import fit
from seglab.engine.optim import build_optimizer
from seglab.losses import create_loss
from seglab.models.registry import create_model
from seglab.runs import Run, read_csv


def hand_loop(cfg, data, device: str) -> list[float]:  # noqa: ANN001
    """images/s of each epoch of the plainest loop that trains the same thing."""
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model).to(device).train()
    loss_fn = create_loss(cfg.loss, cfg.model.num_classes, cfg.data.ignore_index)
    optimizer = build_optimizer(model, cfg)
    dataset = train_dataset(cfg, data.train, data.normalization)
    augment = build_augment(cfg.data.augment, cfg.data.ignore_index)  # as engine.fit does
    loader = DataLoader(dataset, batch_size=cfg.train.batch_size, drop_last=True)
    rates = []
    for epoch in range(cfg.train.epochs):
        dataset.set_epoch(epoch)
        start, images = time.perf_counter(), 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            if augment is not None:
                x, y = augment(x, y)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            images += x.shape[0]
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        rates.append(images / (time.perf_counter() - start))
    return rates


def engine_fit(cfg, data) -> list[float]:  # noqa: ANN001
    with tempfile.TemporaryDirectory() as tmp:
        run = Run.create(tmp, "bench")
        fit(cfg, run, data)
        return [float(r["images_per_s"]) for r in read_csv(run.file("history.csv"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--patches", type=int, default=96, help="patches per epoch")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--rounds", type=int, default=2, help="hand/fit pairs, alternated")
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    cfg = load_config(
        None,
        [
            f"train.epochs={args.epochs}",
            f"data.patches_per_epoch={args.patches}",
            f"train.batch_size={args.batch_size}",
            f"train.accelerator={args.accelerator}",
            "train.progress=false",
            "schedule.name=constant",
        ],
    )
    data = prepare_data(cfg)
    device = "cuda" if args.accelerator == "cuda" else "cpu"
    # alternate the two (hand, fit, hand, fit, ...) so that drifting machine load hits both
    # alike, and compare the medians over all their epochs (the first of each run warms up)
    skip = 1 if args.epochs > 1 else 0
    hand_runs, fit_runs = [], []
    for _ in range(args.rounds):
        hand_runs.append(hand_loop(cfg, data, device))
        fit_runs.append(engine_fit(cfg, data))
    hand = statistics.median([r for run in hand_runs for r in run[skip:]])
    ours = statistics.median([r for run in fit_runs for r in run[skip:]])
    name = torch.cuda.get_device_name(0) if device == "cuda" else f"cpu x{torch.get_num_threads()}"
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(
        f"device: {name}; model {cfg.model.name} depth {cfg.model.depth} base "
        f"{cfg.model.base_channels}; patch {cfg.data.patch_size}; batch {cfg.train.batch_size}; "
        f"{args.patches} patches x {args.epochs} epochs x {args.rounds} alternated runs each "
        f"(median over epochs 2.. of every run)"
    )
    print(f"hand-written loop: {hand:8.1f} images/s  (runs: {_rounded(hand_runs)})")
    print(f"engine.fit:        {ours:8.1f} images/s  (runs: {_rounded(fit_runs)})")
    print(f"ratio fit/hand:    {ours / hand:8.3f}  (goal >= 0.95)")


def _rounded(runs: list[list[float]]) -> list[list[float]]:
    return [[round(r, 1) for r in run] for run in runs]


if __name__ == "__main__":
    guarded(main)
