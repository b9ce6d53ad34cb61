"""Validation IoU of finished ``bench/quality.py`` runs under a grid of post-processing settings.

Post-processing (opening, hole filling, small-object removal) changes nothing in training, so
it is judged on runs already trained, and only on their validation split: each run's model
predicts the validation images once (with the run's ``eval`` settings, TTA included), the
threshold is tuned there as in the pipeline, and every setting of the grid is scored on the
thresholded maps with ``seglab.inference.postprocess.tune_postprocessing`` (the function behind
``eval.tune_postprocessing``). The test split is never predicted.

    PYTHONPATH=src python bench/postprocess_grid.py bench/results/quality.jsonl \\
        [--system seglab] [--min-sizes 0,100,250,500,1000,2000] [--openings 0,2] \\
        [--show 2,1,500]

Each run prints its validation IoU without post-processing, the grid's best setting and the
gain of each ``--show`` setting (opening,fill_holes 0/1,min_object_size); the last lines give
each system's mean gain of the best settings on average. The run folders must still exist.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections import defaultdict
from pathlib import Path

from bench_cli import guarded, read_records
from quality import register_peers

from seglab.config import load_config
from seglab.data.prepare import prepare_data
from seglab.inference.evaluate import foreground_probabilities
from seglab.inference.postprocess import (
    MIN_OBJECT_SIZES,
    NO_POSTPROCESSING,
    OPENINGS,
    SettingsKey,
    settings_key,
    tune_postprocessing,
)
from seglab.inference.predict import Predictor, inference_device
from seglab.inference.settings import InferenceSettings
from seglab.inference.threshold import tune_threshold
from seglab.models.io import load_model_folder
from seglab.runs import read_json


def label(setting: SettingsKey) -> str:
    radius, fill, size = setting
    return f"opening {radius}, fill {'on' if fill else 'off'}, min {size} px"


def parse_setting(text: str) -> SettingsKey:
    radius, fill, size = (int(v) for v in text.split(","))
    return radius, bool(fill), size


def val_grid(run: Path, sizes: tuple[int, ...], openings: tuple[int, ...]) -> dict:
    if not run.is_dir():
        raise SystemExit(f"run folder {run} is gone: rerun bench/quality.py with --runs-dir")
    cfg = load_config(run / "config.yaml")
    device = inference_device(cfg.train.accelerator)
    model, meta = load_model_folder(run / "model", device)
    settings = InferenceSettings.from_eval(cfg.eval)
    data = prepare_data(cfg, read_json(run / "split.json"))
    predictor = Predictor(model, meta["normalization"], settings, device, cfg.model.num_classes)
    probs = foreground_probabilities(predictor, data.val)
    masks = [s.mask for s in data.val]
    threshold, _ = tune_threshold(probs, masks, cfg.data.ignore_index)
    best, table = tune_postprocessing(
        probs, masks, threshold, cfg.data.ignore_index, min_object_sizes=sizes, openings=openings
    )
    return {"threshold": threshold, "best": best, "table": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--system", action="append", help="only these systems (repeatable)")
    parser.add_argument("--min-sizes", default=",".join(map(str, MIN_OBJECT_SIZES)))
    parser.add_argument("--openings", default=",".join(map(str, OPENINGS)))
    parser.add_argument("--show", action="append", default=[], metavar="R,F,S")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    register_peers()
    sizes = tuple(int(v) for v in args.min_sizes.split(","))
    openings = tuple(int(v) for v in args.openings.split(","))
    shown = [parse_setting(s) for s in args.show]
    records = read_records(args.results)
    gains: dict[str, list[dict[SettingsKey, float]]] = defaultdict(list)
    for record in records:
        if args.system and record["system"] not in args.system:
            continue
        start = time.perf_counter()
        grid = val_grid(Path(record["run"]), sizes, openings)
        table = grid["table"]
        plain = table[NO_POSTPROCESSING]
        gains[record["system"]].append({k: v - plain for k, v in table.items()})
        best = settings_key(grid["best"])
        extra = "".join(f", {label(s)}: {table[s] - plain:+.4f}" for s in shown)
        print(
            f"{record['config']} {record['system']:<6} seed {record['seed']}: threshold "
            f"{grid['threshold']:.2f}, val IoU {plain:.4f}; best {label(best)}: "
            f"{table[best] - plain:+.4f}{extra} ({time.perf_counter() - start:.0f}s)",
            flush=True,
        )
    for system, rows in gains.items():
        mean = {k: statistics.mean(r[k] for r in rows) for k in rows[0]}
        top = sorted(mean, key=lambda k: -mean[k])[:3]
        listed = "; ".join(f"{label(k)} {mean[k]:+.4f}" for k in top)
        print(f"{system}: {len(rows)} runs, best mean val IoU gains: {listed}")


if __name__ == "__main__":
    guarded(main)
