"""Re-evaluate the runs of ``bench/quality.py`` results with other ``eval.*`` settings.

Test-time settings (``eval.tta``, post-processing) change nothing in training, so they are
judged on runs already trained: each run named in the results files is evaluated again with
``--set`` (threshold tuned on validation again, with the new settings), into a new folder
under ``<run>/evaluations/``. Each record gives the validation IoU at the tuned threshold
(the figure to choose a setting by) and the test metrics, each beside the run's plain
evaluation; the last lines compare the means per system.

    PYTHONPATH=src python bench/quality_reeval.py bench/results/quality.jsonl \\
        --set eval.tta=flips [--system seglab] [--out bench/results/reeval.jsonl]

``--checkpoint last.ckpt`` evaluates each run's last epoch instead of its kept weights:
what ``train.checkpoint.keep: last`` would have kept, since the setting changes nothing
else in training, so those records carry that override. Likewise ``--checkpoint best.ckpt``
on runs that kept an epoch ensemble (``train.checkpoint.ensemble: K``) scores the same
run's single best epoch, and its records carry ``train.checkpoint.ensemble=1`` in place of
the run's own value. The validation IoU of the last
epoch is then no judge against the best epoch's, which was chosen on the same slices
(``bench/checkpoint_choice.py`` judges the choice on halves of validation).

Each record's ``pipeline`` is the fingerprint (``quality.pipeline_fingerprint``) of the
run's stored config with the new settings: that of a run trained and evaluated with them,
which ``quality_table.py`` pairs it with.

The run folders must still exist (``bench/quality.py --runs-dir``).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections import defaultdict
from pathlib import Path

from bench_cli import guarded, read_records
from quality import (
    append_record,
    pipeline_fingerprint,
    postprocessed_val_iou,
    register_peers,
    tuned_val_iou,
)

from seglab import pipeline
from seglab.config import load_config
from seglab.runs import CONFIG_FILE, METRICS_FILE, read_json


def val_iou_at_chosen(metrics: dict) -> float:
    value = tuned_val_iou(metrics)
    if value is None:
        raise SystemExit("a run's evaluation has no threshold tuning on validation to compare")
    return value


def postprocessed(result: dict) -> bool:
    """Whether either evaluation of a record post-processed."""
    return (
        result["val_iou_postprocessed"] is not None
        or result["val_iou_postprocessed_plain"] is not None
    )


def postprocessed_pair(result: dict) -> tuple[float, float]:
    """Validation IoU after post-processing, (plain, new); the raw figure stands in for an
    evaluation that did not post-process."""
    before, after = result["val_iou_postprocessed_plain"], result["val_iou_postprocessed"]
    return (
        result["val_iou_plain"] if before is None else before,
        result["val_iou"] if after is None else after,
    )


def postprocessed_note(result: dict) -> str:
    """The tail of a record's line where either evaluation post-processed."""
    if not postprocessed(result):
        return ""
    before, after = postprocessed_pair(result)
    return f", val IoU after post-processing {before:.4f} -> {after:.4f}"


def summary_line(system: str, rows: list[dict], what: str) -> str:
    """One system's means over its re-evaluated runs, before -> after, with how many runs
    rose on validation: after post-processing too where any run post-processed (a run
    without it counts with its raw figure, as in its own line)."""
    keys = ("val_iou_plain", "val_iou", "test_iou_plain", "test_iou")
    mean = {k: statistics.mean(r[k] for r in rows) for k in keys}
    up = sum(r["val_iou"] > r["val_iou_plain"] for r in rows)
    line = (
        f"{system}: {len(rows)} runs, mean val IoU {mean['val_iou_plain']:.4f} -> "
        f"{mean['val_iou']:.4f} (up with {up}), "
    )
    if any(postprocessed(r) for r in rows):
        pairs = [postprocessed_pair(r) for r in rows]
        before = statistics.mean(b for b, _ in pairs)
        after = statistics.mean(a for _, a in pairs)
        up_post = sum(a > b for b, a in pairs)
        line += f"after post-processing {before:.4f} -> {after:.4f} (up with {up_post}), "
    return (
        line + f"mean test IoU {mean['test_iou_plain']:.4f} -> {mean['test_iou']:.4f} with {what}"
    )


def keep_settings(checkpoint: str | None, run: Path) -> list[str]:
    """The training settings under which ``run`` would have kept what ``checkpoint`` holds.

    One checkpoint is one network: of a run that kept an epoch ensemble it is what
    ``train.checkpoint.ensemble: 1`` keeps (``best.ckpt``) or a single epoch; ``last.ckpt``
    is what ``train.checkpoint.keep: last`` keeps.
    """
    if checkpoint is None:
        return []
    keep = []
    if load_config(run / CONFIG_FILE).train.checkpoint.ensemble > 1:
        keep.append("train.checkpoint.ensemble=1")
    if checkpoint == "last.ckpt":
        keep.append("train.checkpoint.keep=last")
    return keep


def with_settings(overrides: list[str], settings: list[str]) -> list[str]:
    """``overrides`` with each of ``settings`` in place of any earlier value of its key."""
    keys = {setting.split("=", 1)[0] for setting in settings}
    return [o for o in overrides if o.split("=", 1)[0] not in keys] + settings


def reevaluate(record: dict, sets: list[str], checkpoint: str | None = None) -> dict:
    run = Path(record["run"])
    if not run.is_dir():
        raise SystemExit(f"run folder {run} is gone: rerun bench/quality.py with --runs-dir")
    plain = read_json(run / METRICS_FILE)
    start = time.perf_counter()
    metrics = pipeline.evaluate_run(run, overrides=sets, checkpoint=checkpoint).metrics
    keep = keep_settings(checkpoint, run)
    overrides = with_settings(list(record.get("overrides", [])), keep)
    # the run's resolved config with the new eval settings (and the keep setting): the
    # fingerprint of a run trained that way, so the table pairs this record with such runs
    as_if_trained = load_config(run / CONFIG_FILE, [*sets, *keep])
    return {
        **{k: record[k] for k in ("config", "system", "seed", "budget", "precision", "run")},
        # of the training
        **{k: record.get(k) for k in ("epochs", "fit_s", "best_epoch", "reference_step_ms")},
        "overrides": overrides,
        "pipeline": pipeline_fingerprint(as_if_trained),
        "eval_overrides": sets,
        **({"checkpoint": metrics["checkpoint"]} if checkpoint else {}),
        "val_iou": val_iou_at_chosen(metrics),
        "val_iou_plain": val_iou_at_chosen(plain),
        # after the configured post-processing (None without): judges eval.opening,
        # fill_holes and min_object_size, which val_iou (raw maps) does not see
        "val_iou_postprocessed": postprocessed_val_iou(metrics),
        "val_iou_postprocessed_plain": postprocessed_val_iou(plain),
        "test_iou": metrics["dataset"]["iou"],
        "test_iou_plain": plain["dataset"]["iou"],
        "test_dice": metrics["dataset"]["dice"],
        "test_image_iou": metrics["per_image_mean"]["iou"],
        "threshold": metrics["threshold"],
        "inference_precision": metrics.get("inference_precision", "32"),
        "threshold_plain": plain["threshold"],
        "eval_s": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--checkpoint", help="evaluate this checkpoint of each run (e.g. last.ckpt) instead"
    )
    parser.add_argument("--system", action="append", help="only these systems (repeatable)")
    parser.add_argument("--out", type=Path, help="append one JSON line per run here")
    args = parser.parse_args()
    if not args.sets and not args.checkpoint:
        parser.error("give --set KEY=VALUE or --checkpoint FILE (or both)")
    what = " ".join(args.sets + ([f"--checkpoint {args.checkpoint}"] if args.checkpoint else []))
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    register_peers()
    records = read_records(args.results)
    records = [r for r in records if not args.system or r["system"] in args.system]
    by_system: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        result = reevaluate(record, args.sets, args.checkpoint)
        by_system[result["system"]].append(result)
        print(
            "reeval: {config} {system:<6} seed {seed} {eval_overrides}: val IoU {val_iou_plain:.4f}"
            " -> {val_iou:.4f}, test IoU {test_iou_plain:.4f} -> {test_iou:.4f} "
            "(threshold {threshold_plain:.2f} -> {threshold:.2f}, {eval_s:.0f}s)".format(**result)
            + postprocessed_note(result),
            flush=True,
        )
        if args.out:
            append_record(args.out, result)
    for system, rows in by_system.items():
        print(summary_line(system, rows, what))


if __name__ == "__main__":
    guarded(main)
