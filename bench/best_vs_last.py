"""Validation IoU of a run's kept (best) weights against its last epoch's weights.

A run keeps the weights of its best validation epoch (``best.ckpt``, by the one-pass
validation IoU at the configured threshold). Whether that choice caught a real peak or
one lucky validation shows when the last epoch's weights (``last.ckpt``) are scored the
same way: here both are scored on the run's validation split at the threshold tuned
there, with one pass and with the config's ``eval.tta`` (or ``--tta``). The test split
is not read.

    PYTHONPATH=src python bench/best_vs_last.py bench/results/quality.jsonl \\
        [--system seglab] [--tta flips] [--out bench/results/best_vs_last.jsonl]

The run folders must still exist (``bench/quality.py --runs-dir``) with their
``checkpoints/last.ckpt``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch
from bench_cli import guarded, read_records
from quality import append_record, register_peers
from quality_table import labelled, settings

from seglab.config import load_config
from seglab.data.prepare import prepare_data
from seglab.inference.evaluate import foreground_probabilities
from seglab.inference.predict import Predictor
from seglab.inference.settings import InferenceSettings
from seglab.inference.threshold import tune_threshold
from seglab.models.io import load_model_folder, read_checkpoint
from seglab.runs import Run

LAST = "checkpoints/last.ckpt"


def tuned_val_iou(model: torch.nn.Module, meta: dict, cfg, data, tta: str) -> tuple[float, float]:
    """(IoU, threshold) of ``model`` on ``data.val`` at the threshold tuned there."""
    inference = InferenceSettings.from_eval(cfg.eval, threshold=0.5).with_(tta=tta)
    predictor = Predictor(model, meta["normalization"], inference, "cpu", 1)
    probs = foreground_probabilities(predictor, data.val)
    masks = [s.mask for s in data.val]
    threshold, table = tune_threshold(probs, masks, cfg.data.ignore_index)
    return table[threshold], threshold


def val_scores(run: Run, tta: str | None) -> dict:
    """Tuned-threshold validation IoU of the best and the last weights, one pass and TTA."""
    cfg = load_config(run.file("config.yaml"))
    data = prepare_data(cfg, run.read_json("split.json"))
    model, meta = load_model_folder(run.model_dir, "cpu")
    passes = {"none": "none", "tta": tta or cfg.eval.tta}
    last, epoch_last = read_checkpoint(run.path / LAST)
    scores: dict = {"epoch_last": epoch_last}
    for weights in ("best", "last"):
        if weights == "last":
            model.load_state_dict(last)
        for label, mode in passes.items():
            iou, threshold = tuned_val_iou(model, meta, cfg, data, mode)
            scores[f"val_iou_{weights}_{label}"] = iou
            scores[f"threshold_{weights}_{label}"] = threshold
    scores["tta"] = passes["tta"]
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--system", action="append", help="only these systems (repeatable)")
    parser.add_argument("--tta", help="the TTA of the second pass (default: the config's)")
    parser.add_argument("--out", type=Path, help="append one JSON line per run here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    register_peers()
    records = [
        r for r in read_records(args.results) if not args.system or r["system"] in args.system
    ]
    by_name: dict[str, list[dict]] = defaultdict(list)  # by system and settings
    for record in records:
        run = Run.open(record["run"])
        if not (run.path / LAST).is_file():
            raise SystemExit(f"{run.path / LAST} is gone: rerun bench/quality.py with --runs-dir")
        start = time.perf_counter()
        scores = val_scores(run, args.tta)
        result = {
            **{k: record[k] for k in ("config", "system", "seed", "budget", "run")},
            **{k: record.get(k) for k in ("epochs", "best_epoch", "overrides")},
            **scores,
            "eval_s": round(time.perf_counter() - start, 1),
        }
        name = labelled(result["system"], settings(result))
        by_name[name].append(result)
        print(
            f"{result['config']} {name} "
            + "seed {seed}: best epoch {best_epoch} of {epoch_last}: "
            "val IoU one pass {val_iou_best_none:.4f} best, {val_iou_last_none:.4f} last; "
            "{tta} {val_iou_best_tta:.4f} best, {val_iou_last_tta:.4f} last "
            "({eval_s:.0f}s)".format(**result),
            flush=True,
        )
        if args.out:
            append_record(args.out, result)
    for name, rows in by_name.items():
        keys = ("val_iou_best_none", "val_iou_last_none", "val_iou_best_tta", "val_iou_last_tta")
        mean = {k: statistics.mean(r[k] for r in rows) for k in keys}
        print(
            f"{name}: {len(rows)} runs, mean val IoU one pass {mean['val_iou_best_none']:.4f} "
            f"best, {mean['val_iou_last_none']:.4f} last; {rows[0]['tta']} "
            f"{mean['val_iou_best_tta']:.4f} best, {mean['val_iou_last_tta']:.4f} last"
        )


if __name__ == "__main__":
    guarded(main)
