"""Which epoch to keep: rules for choosing a run's checkpoint, judged on validation only.

A run keeps the epoch with the best one-pass validation IoU at the configured threshold
(``best.ckpt``), and the evaluation then tunes the threshold on the same validation slices.
Whether a different rule would keep better weights cannot be judged on the slices it chose
on: the winner of about 25 noisy validations is biased upwards there. This script splits
the validation slices into two halves of contiguous slices (the slice on their border left
out: neighbouring slices are near-duplicates), chooses an epoch on one half by each rule,
tunes the threshold there, and scores that epoch at that threshold on the other half; then
the other way round. The test split is not read.

Rules:

- ``fixed``: the best IoU at ``eval.threshold`` (what training does now),
- ``tuned``: the best IoU at the threshold tuned on the half for that epoch,
- ``last``: the last validated epoch.

The runs must have kept every epoch's weights: ``bench/quality.py ... --set
train.checkpoint.every_n_epochs=1 --runs-dir DIR``. Each validated epoch's weights predict
the validation slices once (no TTA, as the validation during training). Each run also
prints how much its IoU moves from one validated epoch to the next, at the fixed threshold
and at the tuned one (mean absolute change, mean of the two halves): if the tuned IoU moves
much less, the swings are in the calibration (where the probabilities cross the threshold),
not in the ranking of pixels.

``--swings`` needs no weights: it prints, from each run's ``history.csv``, the one-pass
validation IoU's range over the validated epochs after the first, its mean absolute change
between validations and the mean of the last five.

    PYTHONPATH=src python bench/checkpoint_choice.py bench/results/quality.jsonl \\
        [--swings] [--out bench/results/checkpoint_choice.jsonl]

``--average K`` scores instead the equal average of each run's last K epochs' weights (and
batch-norm statistics) on each half, at the threshold tuned for it on the other half, beside
the ``fixed`` and ``last`` rules' scores of the same run and direction from earlier records
of this script (``--paired``): nothing is chosen, so it needs no other epoch.

    PYTHONPATH=src python bench/checkpoint_choice.py bench/results/quality.jsonl --average 5 \\
        --paired bench/results/checkpoint_choice.jsonl [--out bench/results/average.jsonl]

``--ensemble K [K ...]`` adds, beside the rules, a prediction ensemble per direction: the
K epochs ranked highest on the choosing half by the ``fixed`` rule's score (so K = 1 is
``fixed``'s epoch), their one-pass probabilities averaged pixel by pixel, the threshold
tuned for the average on the choosing half and the IoU at it on the other half.

    PYTHONPATH=src python bench/checkpoint_choice.py bench/results/quality.jsonl \\
        --ensemble 3 5 [--out bench/results/ensemble.jsonl]
"""

from __future__ import annotations

import argparse
import csv
import functools
import logging
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from bench_cli import guarded, read_records
from quality import append_record, register_peers
from quality_table import labelled, settings

from seglab.config import load_config
from seglab.data.prepare import prepare_data
from seglab.inference.evaluate import foreground_probabilities
from seglab.inference.predict import Predictor
from seglab.inference.settings import InferenceSettings
from seglab.inference.threshold import best_grid_threshold, tune_threshold
from seglab.models.ensemble import single_network
from seglab.models.io import checkpoint_epoch, load_model_folder, read_checkpoint
from seglab.runs import Run

RULES = ("fixed", "tuned", "last")


def halves(count: int) -> tuple[list[int], list[int]]:
    """Indices of two halves of ``count`` slices in order, with the slice between them
    (index ``(count - 1) // 2``) left out, so that no two neighbours are split."""
    if count < 3:
        raise SystemExit(f"{count} validation slices cannot be split into two halves")
    first = (count - 1) // 2
    return list(range(first)), list(range(first + 1, count))


def validation_halves(samples: list) -> list[list]:
    """The validation samples in slice order, split by :func:`halves` into [A, B]."""
    ordered = sorted(samples, key=lambda s: (s.group, s.index, s.name))
    return [[ordered[i] for i in part] for part in halves(len(ordered))]


def validation_history(run: Run) -> dict[int, float]:
    """1-based epoch -> one-pass validation IoU, from the run's ``history.csv``."""
    with open(run.path / "history.csv", newline="") as handle:
        rows = csv.DictReader(handle)
        return {int(row["epoch"]): float(row["val_iou"]) for row in rows if row["val_iou"]}


def validated_epochs(run: Run) -> list[int]:
    """1-based epochs with a validation IoU in the run's ``history.csv``."""
    return sorted(validation_history(run))


def mean_change(values: list[float]) -> float:
    """Mean absolute change between consecutive values."""
    return statistics.mean(abs(b - a) for a, b in zip(values, values[1:], strict=False))


def swings(run: Run) -> dict:
    """The validation IoU's movement over a run's validated epochs after the first."""
    history = validation_history(run)
    values = [history[e] for e in sorted(history)[1:]]
    return {
        "validations": len(values),
        "val_iou_min": min(values),
        "val_iou_max": max(values),
        "mean_change": mean_change(values),
        "last5_mean": statistics.mean(values[-5:]),
    }


def mean_changes(fixed: float, tables: dict[int, list[dict[float, float]]]) -> dict:
    """Mean absolute change between validated epochs (after the first) of the IoU at the
    fixed threshold and at the tuned one, averaged over the two halves."""
    epochs = sorted(tables)[1:]
    out = {}
    for label in ("fixed", "tuned"):
        per_half = []
        for half in (0, 1):
            tabs = [tables[e][half] for e in epochs]
            if label == "fixed":
                values = [t[nearest(t, fixed)] for t in tabs]
            else:
                values = [t[best_threshold(t)] for t in tabs]
            per_half.append(mean_change(values))
        out[f"{label}_mean_change"] = statistics.mean(per_half)
    return out


def epoch_weights(run: Run) -> dict[int, Path]:
    """1-based epoch -> the checkpoint holding its weights (``epoch_*.ckpt``)."""
    found = {}
    for path in sorted(run.checkpoints.glob("epoch_*.ckpt")):
        # mmap: only the epoch is read here, not the weights and the optimiser's state
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        found[checkpoint_epoch(checkpoint)] = path
    return found


class Halves:
    """A run's validation halves and network: ``probabilities(state)`` predicts each half
    with the weights ``state``, one pass (as the validation during training), and
    ``tables(probabilities)`` gives IoU by threshold on each half."""

    def __init__(self, run: Run) -> None:
        cfg = load_config(run.file("config.yaml"))
        data = prepare_data(cfg, run.read_json("split.json"))
        self.parts = validation_halves(data.val)
        self.ignore_index = cfg.data.ignore_index
        self.fixed = float(cfg.eval.threshold)
        model, meta = load_model_folder(run.model_dir, "cpu")
        self.model = single_network(model)  # one epoch's weights at a time
        self.normalization = meta["normalization"]
        self.inference = InferenceSettings.from_eval(cfg.eval, threshold=0.5).with_(tta="none")

    def probabilities(self, state: dict[str, torch.Tensor]) -> list[list[np.ndarray]]:
        self.model.load_state_dict(state)
        predictor = Predictor(self.model, self.normalization, self.inference, "cpu", 1)
        return [foreground_probabilities(predictor, part) for part in self.parts]

    def tables(self, probabilities: list[list[np.ndarray]]) -> list[dict[float, float]]:
        out = []
        for part, probs in zip(self.parts, probabilities, strict=True):
            _, table = tune_threshold(probs, [s.mask for s in part], self.ignore_index)
            out.append(table)
        return out


@functools.lru_cache(maxsize=1)
def halves_of(path: Path) -> Halves:
    """The :class:`Halves` of the run at ``path``, prepared once for the steps that score
    one run in turn (each prediction loads its own weights first)."""
    return Halves(Run.open(path))


Predicted = dict[int, list[list[np.ndarray]]]  # epoch -> [half A maps, half B maps]


def iou_tables(
    run: Run, predicted: Predicted | None = None
) -> tuple[float, dict[int, list[dict[float, float]]]]:
    """(eval.threshold, epoch -> [IoU by threshold on half A, on half B]) for every
    validated epoch of ``run``; each epoch's probabilities are also kept in ``predicted``
    when one is given (for :func:`judge_ensembles`)."""
    halves = halves_of(run.path)
    weights = epoch_weights(run)
    tables: dict[int, list[dict[float, float]]] = {}
    for epoch in validated_epochs(run):
        if epoch not in weights:
            raise SystemExit(
                f"{run.path}: no weights of epoch {epoch}; rerun with "
                "--set train.checkpoint.every_n_epochs=1"
            )
        probabilities = halves.probabilities(read_checkpoint(weights[epoch])[0])
        if predicted is not None:
            predicted[epoch] = probabilities
        tables[epoch] = halves.tables(probabilities)
    return halves.fixed, tables


def average_state(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The equal average of the weights and floating-point buffers (batch-norm statistics)
    of ``states``; integer buffers (batch counts) are the last state's."""
    out = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            out[key] = torch.stack([s[key].float() for s in states]).mean(0).to(last.dtype)
        else:
            out[key] = last
    return out


def average_tables(run: Run, count: int) -> tuple[list[int], list[dict[float, float]]]:
    """(epochs, [IoU by threshold on half A, on half B]) of the average of the run's last
    ``count`` epochs' weights."""
    weights = epoch_weights(run)
    epochs = sorted(weights)[-count:]
    if len(epochs) < count or epochs != list(range(epochs[0], epochs[0] + count)):
        raise SystemExit(
            f"{run.path}: the last {count} epochs' weights are not all there; rerun with "
            "--set train.checkpoint.every_n_epochs=1"
        )
    halves = halves_of(run.path)
    state = average_state([read_checkpoint(weights[e])[0] for e in epochs])
    return epochs, halves.tables(halves.probabilities(state))


def judge_average(tables: list[dict[float, float]]) -> list[dict]:
    """For each direction: the threshold tuned on the choosing half for the averaged
    weights, and their IoU at it on the other half (nothing to choose)."""
    rows = []
    for chooser, scorer in ((0, 1), (1, 0)):
        threshold = best_threshold(tables[chooser])
        rows.append(
            {
                "direction": "AB"[chooser] + ">" + "AB"[scorer],
                "average_threshold": threshold,
                "average_iou": tables[scorer][threshold],
            }
        )
    return rows


def nearest(table: dict[float, float], threshold: float) -> float:
    """The grid threshold of ``table`` closest to ``threshold``."""
    return min(table, key=lambda t: abs(t - threshold))


def best_threshold(table: dict[float, float]) -> float:
    """The threshold ``tune_threshold`` would choose from this IoU-by-threshold table."""
    return best_grid_threshold(np.array(list(table)), np.array(list(table.values())))


def ranked(tables: dict[int, dict[float, float]], fixed: float) -> list[int]:
    """Epochs from the highest IoU at the fixed threshold down (ties: the later first)."""
    score = {e: t[nearest(t, fixed)] for e, t in tables.items()}
    return sorted(tables, key=lambda e: (score[e], e), reverse=True)


def choose(rule: str, tables: dict[int, dict[float, float]], fixed: float) -> int:
    """The epoch ``rule`` keeps, from each epoch's IoU-by-threshold table on one half."""
    epochs = sorted(tables)
    if rule == "last":
        return epochs[-1]
    if rule == "fixed":
        return ranked(tables, fixed)[0]
    score = {e: tables[e][best_threshold(tables[e])] for e in epochs}
    return max(epochs, key=lambda e: (score[e], e))  # ties: the later epoch


def judge(fixed: float, tables: dict[int, list[dict[float, float]]]) -> list[dict]:
    """For each direction (choose on A, score on B; and back): each rule's epoch, the
    threshold tuned on the choosing half, and the IoU at it on the other half."""
    rows = []
    for chooser, scorer in ((0, 1), (1, 0)):
        on_chooser = {e: t[chooser] for e, t in tables.items()}
        row: dict = {"direction": "AB"[chooser] + ">" + "AB"[scorer]}
        for rule in RULES:
            epoch = choose(rule, on_chooser, fixed)
            threshold = best_threshold(on_chooser[epoch])
            row[f"{rule}_epoch"] = epoch
            row[f"{rule}_threshold"] = threshold
            row[f"{rule}_iou"] = tables[epoch][scorer][threshold]
        row["oracle_iou"] = max(tables[e][scorer][best_threshold(on_chooser[e])] for e in tables)
        rows.append(row)
    return rows


def mean_probabilities(members: list[list[list[np.ndarray]]]) -> list[list[np.ndarray]]:
    """The pixel-wise mean of several epochs' [half A maps, half B maps]."""
    return [
        [np.mean(maps, axis=0, dtype=np.float32) for maps in zip(*halves, strict=True)]
        for halves in zip(*members, strict=True)
    ]


def judge_ensembles(
    run: Run,
    fixed: float,
    tables: dict[int, list[dict[float, float]]],
    counts: list[int],
    predicted: Predicted | None = None,
) -> list[dict]:
    """For each direction and each K of ``counts``: the K epochs :func:`ranked` highest on
    the choosing half, the threshold tuned there for the mean of their probabilities, and
    that mean's IoU at it on the other half. Epochs missing from ``predicted`` (those
    :func:`iou_tables` kept) are predicted again."""
    halves = halves_of(run.path)
    weights = epoch_weights(run)
    predicted = {} if predicted is None else predicted
    rows = []
    for chooser, scorer in ((0, 1), (1, 0)):
        order = ranked({e: t[chooser] for e, t in tables.items()}, fixed)
        row: dict = {"direction": "AB"[chooser] + ">" + "AB"[scorer]}
        for count in counts:
            members = order[:count]
            for epoch in members:
                if epoch not in predicted:
                    predicted[epoch] = halves.probabilities(read_checkpoint(weights[epoch])[0])
            mean = halves.tables(mean_probabilities([predicted[e] for e in members]))
            threshold = best_threshold(mean[chooser])
            row[f"ensemble{count}_epochs"] = members
            row[f"ensemble{count}_threshold"] = threshold
            row[f"ensemble{count}_iou"] = mean[scorer][threshold]
        rows.append(row)
    return rows


def averages(records: list[dict], count: int, paired: list[dict], out: Path | None) -> None:
    """``--average``: each run's average of its last ``count`` epochs, scored on each half
    at the other half's threshold, beside the ``fixed`` rule's epoch of ``paired``."""
    earlier = {(r["run"], r["direction"]): r for r in paired}
    results = []
    for record in records:
        start = time.perf_counter()
        epochs, tables = average_tables(Run.open(record["run"]), count)
        for row in judge_average(tables):
            before = earlier.get((record["run"], row["direction"]))
            if before is None:
                raise SystemExit(f"--paired has no record of {record['run']} {row['direction']}")
            result = {
                **{k: record[k] for k in ("config", "system", "seed", "budget", "run")},
                "average_epochs": epochs,
                **row,
                **{k: before[k] for k in ("fixed_epoch", "fixed_iou", "last_epoch", "last_iou")},
                "eval_s": round(time.perf_counter() - start, 1),
            }
            results.append(result)
            print(
                f"{result['config']} {result['system']} seed {result['seed']} "
                f"{result['direction']}: average of epochs {epochs[0]}-{epochs[-1]} "
                f"{result['average_iou']:.4f}, fixed epoch {result['fixed_epoch']} "
                f"{result['fixed_iou']:.4f}, last epoch {result['last_epoch']} "
                f"{result['last_iou']:.4f}",
                flush=True,
            )
            if out:
                append_record(out, result)
    if results:
        means = {
            k: statistics.mean(r[f"{k}_iou"] for r in results) for k in ("fixed", "last", "average")
        }
        above = {
            k: sum(r[f"{k}_iou"] > r["fixed_iou"] for r in results) for k in ("average", "last")
        }
        print(
            f"{len(results)} choices (runs x directions): mean IoU on the other half "
            + ", ".join(f"{rule} {value:.4f}" for rule, value in means.items())
            + f"; above fixed: average {above['average']}, last {above['last']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--system", action="append", help="only these systems (repeatable)")
    parser.add_argument("--out", type=Path, help="append one JSON line per run and direction")
    parser.add_argument("--swings", action="store_true", help="only history.csv's swings")
    parser.add_argument(
        "--average", type=int, metavar="K", help="score the average of the last K epochs instead"
    )
    parser.add_argument(
        "--ensemble",
        type=int,
        nargs="+",
        default=[],
        metavar="K",
        help="also score the mean prediction of the K epochs ranked highest on each half",
    )
    parser.add_argument(
        "--paired",
        nargs="+",
        type=Path,
        default=[],
        help="with --average: this script's earlier records of the same runs, to compare with",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    register_peers()
    records = [
        r for r in read_records(args.results) if not args.system or r["system"] in args.system
    ]
    if args.swings:
        for record in records:
            found = swings(Run.open(record["run"]))
            print(
                f"{record['config']} {labelled(record['system'], settings(record))} "
                f"seed {record['seed']}: {found['validations']} validations after the first, "
                f"one-pass IoU {found['val_iou_min']:.4f}-{found['val_iou_max']:.4f}, mean change "
                f"{found['mean_change']:.4f}, last five {found['last5_mean']:.4f}"
            )
        return
    if args.average:
        averages(records, args.average, read_records(args.paired), args.out)
        return
    results = []
    for record in records:
        run = Run.open(record["run"])
        start = time.perf_counter()
        predicted: Predicted | None = {} if args.ensemble else None
        fixed, tables = iou_tables(run, predicted)
        moves = mean_changes(fixed, tables)
        print(
            f"{record['config']} {labelled(record['system'], settings(record))} "
            f"seed {record['seed']}: mean change between "
            f"validations on a half, at {fixed:g} {moves['fixed_mean_change']:.4f}, "
            f"tuned {moves['tuned_mean_change']:.4f}",
            flush=True,
        )
        rows = judge(fixed, tables)
        if args.ensemble:
            ensembles = judge_ensembles(run, fixed, tables, args.ensemble, predicted)
            for row, extra in zip(rows, ensembles, strict=True):
                row.update(extra)
        for row in rows:
            result = {
                **{k: record[k] for k in ("config", "system", "seed", "budget", "run")},
                "validated_epochs": len(tables),
                **moves,
                **row,
                "eval_s": round(time.perf_counter() - start, 1),
            }
            results.append(result)
            print(
                f"{result['config']} {result['system']} seed {result['seed']} "
                f"{result['direction']}: "
                + ", ".join(
                    f"{rule} epoch {result[f'{rule}_epoch']} {result[f'{rule}_iou']:.4f}"
                    for rule in RULES
                )
                + "".join(
                    f", top {k} {result[f'ensemble{k}_iou']:.4f}"
                    + f" (epochs {','.join(map(str, result[f'ensemble{k}_epochs']))})"
                    for k in args.ensemble
                )
                + f"; best possible {result['oracle_iou']:.4f}",
                flush=True,
            )
            if args.out:
                append_record(args.out, result)
    if results:
        means = {rule: statistics.mean(r[f"{rule}_iou"] for r in results) for rule in RULES}
        wins = sum(r["tuned_iou"] > r["fixed_iou"] for r in results)
        losses = sum(r["tuned_iou"] < r["fixed_iou"] for r in results)
        print(
            f"{len(results)} choices (runs x directions): mean IoU on the other half "
            + ", ".join(f"{rule} {value:.4f}" for rule, value in means.items())
            + f"; tuned above fixed {wins}, below {losses}"
        )
        for k in args.ensemble:
            gains = [r[f"ensemble{k}_iou"] - r["fixed_iou"] for r in results]
            print(
                f"top {k}: mean IoU on the other half {means['fixed'] + statistics.mean(gains):.4f}"
                f" ({statistics.mean(gains):+.4f} against fixed), above fixed in "
                f"{sum(g > 0 for g in gains)} of {len(gains)}"
            )


if __name__ == "__main__":
    guarded(main)
