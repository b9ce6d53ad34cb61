"""Tune the threshold on the raw probability maps or on the post-processed masks: which
scores better on validation slices it was not tuned on.

A run's evaluation tunes the threshold on the raw foreground probabilities of the
validation split and then applies the configured post-processing (opening, hole filling,
small-object removal) at that threshold. The output that is scored is the post-processed
mask, so the threshold could be tuned on that instead. Tuned and scored on the same slices
it would win by construction; so this script splits the validation slices into two halves
(``checkpoint_choice.validation_halves``: contiguous, the slice on their border left out),
tunes both thresholds on one half and scores the post-processed masks at each on the other
half, then the other way round. The test split is not read.

Each run's kept weights predict the validation slices once, with the config's TTA and
window (``--set eval.*`` changes them, as in ``quality_reeval.py``); every threshold of the
tuning grid is then thresholded and post-processed with ``seglab.inference.postprocess``,
the function the evaluation and ``seglab predict`` use.

    PYTHONPATH=src python bench/postprocessed_threshold.py bench/results/quality.jsonl \\
        [--set eval.min_object_size=100] [--out bench/results/postprocessed_threshold.jsonl]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

import numpy as np
from bench_cli import guarded, read_records
from checkpoint_choice import best_threshold, validation_halves
from quality import append_record, register_peers

from seglab.config import load_config
from seglab.data.prepare import prepare_data
from seglab.inference.evaluate import foreground_probabilities
from seglab.inference.postprocess import is_active, postprocess
from seglab.inference.predict import Predictor
from seglab.inference.settings import InferenceSettings
from seglab.inference.threshold import GRID, tune_threshold
from seglab.models.io import load_model_folder
from seglab.pipeline.evaluation import check_eval_overrides
from seglab.runs import CONFIG_FILE, SPLIT_FILE, Run


def postprocessed_table(
    probs: list[np.ndarray],
    masks: list[np.ndarray],
    settings: InferenceSettings,
    ignore_index: int | None,
    grid: np.ndarray = GRID,
) -> dict[float, float]:
    """IoU pooled over all pixels of all images of the masks ``prob > t`` after the
    post-processing of ``settings``, for every threshold ``t`` of ``grid``."""
    counts = np.zeros((len(grid), 3), np.int64)  # tp, fp, fn
    for prob, mask in zip(probs, masks, strict=True):
        valid = mask != ignore_index if ignore_index is not None else np.ones(mask.shape, bool)
        truth = (mask == 1) & valid
        for i, t in enumerate(grid.astype(np.float32)):  # as tune_threshold compares
            pred = postprocess((prob > t).astype(np.uint8), settings).astype(bool) & valid
            tp = int((pred & truth).sum())
            counts[i] += (tp, int(pred.sum()) - tp, int(truth.sum()) - tp)
    total = counts.sum(axis=1)
    iou = np.where(total > 0, counts[:, 0] / np.maximum(total, 1), np.nan)
    return {float(t): float(v) for t, v in zip(grid, iou, strict=True)}


def judge_run(run: Run, sets: list[str]) -> list[dict]:
    """Per direction (tune on half A, score on B; then B on A): both thresholds and the
    post-processed IoU each reaches on the other half."""
    cfg = load_config(run.file(CONFIG_FILE), sets)
    inference = InferenceSettings.from_eval(cfg.eval, threshold=0.5)
    if not is_active(inference):
        raise SystemExit(f"{run.path}: its eval settings post-process nothing; nothing to compare")
    data = prepare_data(cfg, run.read_json(SPLIT_FILE))
    model, meta = load_model_folder(run.model_dir, "cpu")
    predictor = Predictor(model, meta["normalization"], inference, "cpu", 1)
    ignore = cfg.data.ignore_index
    tables = []
    for part in validation_halves(data.val):
        part_probs = foreground_probabilities(predictor, part)
        part_masks = [s.mask for s in part]
        raw = tune_threshold(part_probs, part_masks, ignore)[1]
        tables.append((raw, postprocessed_table(part_probs, part_masks, inference, ignore)))
    rows = []
    for direction, (tune, score) in (("A->B", (0, 1)), ("B->A", (1, 0))):
        raw_t, post_t = best_threshold(tables[tune][0]), best_threshold(tables[tune][1])
        scored = tables[score][1]
        rows.append(
            {
                "direction": direction,
                "raw_threshold": raw_t,
                "postprocessed_threshold": post_t,
                "raw_iou": scored[raw_t],
                "postprocessed_iou": scored[post_t],
                "best_possible_iou": scored[best_threshold(scored)],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--system", action="append", help="only these systems (repeatable)")
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], help="eval.* settings, e.g. eval.tta"
    )
    parser.add_argument("--out", type=Path, help="append one JSON line per run and direction")
    args = parser.parse_args()
    check_eval_overrides(args.sets, "postprocessed_threshold.py")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    register_peers()
    records = [
        r for r in read_records(args.results) if not args.system or r["system"] in args.system
    ]
    results = []
    for record in records:
        start = time.perf_counter()
        for row in judge_run(Run.open(record["run"]), args.sets):
            result = {
                **{k: record[k] for k in ("config", "system", "seed", "budget", "run")},
                "sets": args.sets,
                **row,
                "eval_s": round(time.perf_counter() - start, 1),
            }
            results.append(result)
            print(
                f"{result['config']} {result['system']} seed {result['seed']} "
                f"{result['direction']}: tuned on raw maps {result['raw_threshold']:.2f} -> "
                f"{result['raw_iou']:.4f}, on post-processed "
                f"{result['postprocessed_threshold']:.2f} -> {result['postprocessed_iou']:.4f} "
                "(best possible "
                f"{result['best_possible_iou']:.4f})",
                flush=True,
            )
            if args.out:
                append_record(args.out, result)
    if results:
        raw = statistics.mean(r["raw_iou"] for r in results)
        post = statistics.mean(r["postprocessed_iou"] for r in results)
        up = sum(r["postprocessed_iou"] > r["raw_iou"] for r in results)
        down = sum(r["postprocessed_iou"] < r["raw_iou"] for r in results)
        print(
            f"{len(results)} choices (runs x directions): mean post-processed IoU on the other "
            f"half, threshold tuned on raw maps {raw:.4f}, on post-processed masks {post:.4f}; "
            f"higher {up}, lower {down}"
        )


if __name__ == "__main__":
    guarded(main)
