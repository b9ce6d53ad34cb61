"""Does the batch norm's running statistics' noise explain the late validation swings?

In the low-rate tail of a Lucchi run the weights hardly move from one epoch to the
next, yet the validation IoU swings by a few hundredths. Batch norm's running
statistics (momentum 0.1: in effect the last 10-20 training batches) move with the
batches drawn, whatever the rate. This script takes each run's last epoch's weights
(``checkpoints/last.ckpt``: chosen by nothing, unlike the kept ones) and scores them on
the run's validation split, one pass, at the threshold tuned there: first with the
statistics as trained, then with statistics recomputed as a plain average over
``--batches`` augmented training batches, for ``--draws`` different draws of batches.
The spread over draws shows how much the statistics alone move the score; the mean
against "as trained" shows whether steadier statistics would score higher. The batches
run in float32 (a bf16-mixed run keeps its statistics in float32 too). The test split
is not read.

    PYTHONPATH=src python bench/bn_recompute.py bench/results/quality.jsonl \\
        [--batches 100] [--draws 3] [--out bench/results/bn_recompute.jsonl]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from bench_cli import guarded, read_records
from best_vs_last import LAST, tuned_val_iou
from quality import append_record, register_peers
from torch import nn
from torch.utils.data import DataLoader

from seglab.config import load_config
from seglab.data.augment import build_augment
from seglab.data.datasets import train_dataset
from seglab.data.prepare import prepare_data
from seglab.models.io import load_model_folder, read_checkpoint
from seglab.runs import Run


@torch.no_grad()
def recompute_statistics(model: nn.Module, loader: DataLoader, augment, batches: int) -> None:
    """Batch-norm statistics as the plain average over ``batches`` augmented batches."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()  # as in training: dropout on, statistics updated
    seen = 0
    while seen < batches:
        for images, masks in loader:
            if augment is not None:
                images, masks = augment(images, masks)
            model(images)
            seen += 1
            if seen == batches:
                break
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--system", action="append", help="only these systems (repeatable)")
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--out", type=Path, help="append one JSON line per run here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    register_peers()
    rows = []
    for record in read_records(args.results):
        if args.system and record["system"] not in args.system:
            continue
        start = time.perf_counter()
        run = Run.open(record["run"])
        cfg = load_config(run.file("config.yaml"))
        data = prepare_data(cfg, run.read_json("split.json"))
        model, meta = load_model_folder(run.model_dir, "cpu")
        trained_state, epoch_last = read_checkpoint(run.path / LAST)
        model.load_state_dict(trained_state)
        model.eval()
        as_trained = tuned_val_iou(model, meta, cfg, data, "none")[0]
        dataset = train_dataset(cfg, data.train, data.normalization)
        augment = build_augment(cfg.data.augment, cfg.data.ignore_index)
        loader = DataLoader(dataset, batch_size=cfg.train.batch_size, shuffle=True, drop_last=True)
        recomputed = []
        for draw in range(args.draws):
            model.load_state_dict(trained_state)
            dataset.set_epoch(10_000 + draw)  # patches no training epoch drew
            torch.manual_seed(draw)  # the loader's order and the augmentation's draws
            recompute_statistics(model, loader, augment, args.batches)
            recomputed.append(tuned_val_iou(model, meta, cfg, data, "none")[0])
        row = {
            **{k: record[k] for k in ("config", "system", "seed", "run")},
            "overrides": record.get("overrides"),
            "epoch_last": epoch_last,
            "batches": args.batches,
            "val_iou_last_as_trained": as_trained,
            "val_iou_last_recomputed": recomputed,
            "eval_s": round(time.perf_counter() - start, 1),
        }
        rows.append(row)
        print(
            f"{row['config']} {row['system']} seed {row['seed']}: last epoch {row['epoch_last']} "
            f"val IoU one pass {as_trained:.4f} as trained, recomputed over {args.batches} "
            f"batches " + " ".join(f"{v:.4f}" for v in recomputed) + f" ({row['eval_s']:.0f}s)",
            flush=True,
        )
        if args.out:
            append_record(args.out, row)
    if rows:
        trained = statistics.mean(r["val_iou_last_as_trained"] for r in rows)
        means = [statistics.mean(r["val_iou_last_recomputed"]) for r in rows]
        spreads = [float(np.ptp(r["val_iou_last_recomputed"])) for r in rows]
        print(
            f"{len(rows)} runs: mean val IoU {trained:.4f} as trained, "
            f"{statistics.mean(means):.4f} recomputed; mean range over draws "
            f"{statistics.mean(spreads):.4f}"
        )


if __name__ == "__main__":
    guarded(main)
