"""Mean and spread over seeds of ``bench/quality.py`` results, as a Markdown table.

    python bench/quality_table.py bench/results/quality.jsonl [more.jsonl ...] [--seeds]

One row per (config, budget, precision, system and its ``--set`` settings, which follow
the system's name): the number of runs, test IoU and Dice
(dataset-level, foreground) as mean ± sample standard deviation, the mean per
image IoU, the epochs trained, the seconds of training loop and the machine's reference
step (``reference_step_ms``, "-" in records made before the harness measured it: a machine
x % slower trains about x % fewer steps in a budget); then seglab's IoU minus each peer's
with the same settings, or the same pipeline (``gap_pairs``: records since 2026-12 carry a
fingerprint of their resolved settings less the network), and a note for any row that
averages runs of different pipelines.
(Epochs, not steps: before last.ckpt followed every epoch, a record's ``steps`` counted
only up to the last epoch that improved the validation IoU.)

``--seeds`` adds one row per run: the kept checkpoint's validation IoU at the threshold
tuned there (with the config's TTA: what the configs' settings were chosen by), its test
IoU, the epochs trained, the epoch it was kept from, the tuned threshold and the seglab
commit that trained it; then the mean over the runs of each setting. A row whose runs come
from more than one commit gets a note, as one over more than one pipeline does.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections import defaultdict
from collections.abc import Callable

from bench_cli import guarded, read_records


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f} (one run)"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def mean_of(rows: list[dict], key: str) -> float:
    """Mean of ``key`` over ``rows``; nan where a record lacks it (older or re-evaluated)."""
    values = [r.get(key) for r in rows]
    return statistics.mean(float("nan") if v is None else v for v in values)


def reference(rows: list[dict]) -> str:
    """Mean reference step in ms over the records that measured it, with their count."""
    values = [r["reference_step_ms"] for r in rows if r.get("reference_step_ms") is not None]
    if not values:
        return "-"
    count = "" if len(values) == len(rows) else f" ({len(values)} of {len(rows)} runs)"
    return f"{statistics.mean(values):.0f}{count}"


def number(value: float | None, digits: int) -> str:
    """``value`` rounded, or ``-`` where a record lacks it (None, or nan from ``mean_of``)."""
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


Key = tuple[str, str, str, str, str]


def group_key(record: dict) -> Key:
    """(config, budget, precision, system, settings); precision "-" for records from before
    the harness wrote it."""
    return (
        record["config"],
        record["budget"],
        record.get("precision") or "-",
        record["system"],
        settings(record),
    )


def labelled(system: str, changed: str) -> str:
    """The system's name, followed by its settings where it has any."""
    return system if changed == "-" else f"{system}, {changed}"


# overrides every harness run carries, or that the system column already says
BOOKKEEPING = ("data.root=", "seed=", "data.split.seed=", "train.progress=", "model.name=peer_")


def settings(record: dict) -> str:
    """The ``--set`` overrides of a run that change what it trains (``-``: the config's own)."""
    changed = [o for o in record.get("overrides") or [] if not o.startswith(BOOKKEEPING)]
    return ", ".join(f"`{o}`" for o in changed) or "-"


def place(config: str, budget: str, precision: str) -> str:
    """ "config budget precision" as the gap lines name it (no precision for old records)."""
    return f"{config} {budget}" + ("" if precision == "-" else f" {precision}")


def iou_gap(ours: list[dict], theirs: list[dict]) -> float:
    """Mean test IoU of seglab's runs less the peer's."""
    return statistics.mean(r["test_iou"] for r in ours) - statistics.mean(
        r["test_iou"] for r in theirs
    )


def without_model(changed: str) -> str:
    """Settings less the ``model.*`` overrides, which a peer's own network does not read."""
    kept = [o for o in changed.split(", ") if changed != "-" and not o.startswith("`model.")]
    return ", ".join(kept) or "-"


def fingerprint(rows: list[dict]) -> str | None:
    """The one pipeline fingerprint (``pipeline``, bench/quality.py) that all ``rows``
    carry; None where one lacks it (older records, re-evaluations) or they differ."""
    prints = {r.get("pipeline") for r in rows}
    return prints.pop() if len(prints) == 1 else None


Pair = tuple[Key, Key, str]  # seglab's group, a peer's group, how the gap line names them


def gap_pairs(groups: dict[Key, list[dict]]) -> list[Pair]:
    """Which seglab rows to compare with which peer rows, in three ways:

    - the same settings;
    - seglab settings no peer run shares, against peer runs that differ from them only
      in ``model.*`` overrides: the peers build their own network and ignore those, so the
      peer's runs stand for the same pipeline;
    - otherwise, rows whose runs all carry one pipeline fingerprint (records since it was
      added): the same resolved settings under different labels, e.g. a seglab run that
      ``--set`` what the config that the peer ran with says by itself.
    """
    pairs: list[Pair] = []
    for ours in sorted(k for k in groups if k[3] == "seglab"):
        where, changed = ours[:3], ours[4]
        peers = sorted(k for k in groups if k[:3] == where and k[3] != "seglab")
        shared = any(k[4] == changed for k in peers)
        pipeline = fingerprint(groups[ours])
        for theirs in peers:
            peer_pipeline = fingerprint(groups[theirs])
            if theirs[4] == changed:
                named = "" if changed == "-" else f" ({changed})"
                if None not in (pipeline, peer_pipeline) and pipeline != peer_pipeline:
                    named += f" [not one pipeline: seglab {pipeline}, {theirs[3]} {peer_pipeline}]"
            elif not shared and theirs[4] == without_model(changed):
                named = f" ({changed}; {theirs[3]} as run with {theirs[4]}, it ignores model.*)"
            elif pipeline is not None and peer_pipeline == pipeline:
                named = f" (seglab with {changed}, {theirs[3]} with {theirs[4]}: one pipeline, "
                named += f"{pipeline})"
            else:
                continue
            pairs.append((ours, theirs, place(*where) + named))
    return pairs


def pipelines(rows: list[dict]) -> set[str]:
    """The pipeline fingerprints that ``rows`` carry (records without one add none)."""
    return {r["pipeline"] for r in rows if r.get("pipeline")}


def mixed(
    groups: dict[Key, list[dict]], kinds: Callable[[list[dict]], set[str]], what: str
) -> list[str]:
    """A note for each row whose runs carry more than one of ``kinds(rows)`` (``what``
    names them in the note)."""
    lines = []
    for key, rows in sorted(groups.items()):
        names = sorted(kinds(rows))
        if len(names) > 1:
            lines.append(
                f"note: {place(*key[:3])} {labelled(key[3], key[4])} averages runs of "
                f"{len(names)} {what} ({', '.join(names)}): split the files to compare them"
            )
    return lines


def mixed_pipelines(groups: dict[Key, list[dict]]) -> list[str]:
    """A warning for each row that averages runs of more than one pipeline fingerprint
    (the same config name and settings, but e.g. the config file changed between them)."""
    return mixed(groups, pipelines, "pipelines")


def commits(rows: list[dict]) -> set[str]:
    """The seglab commits (``commit``, short) that trained ``rows``; records from before the
    harness wrote it add none."""
    return {short(r["commit"]) for r in rows if r.get("commit")}


def short(commit: str | None) -> str:
    """A commit's first 7 hex digits (``+dirty`` kept); ``-`` where a record lacks it."""
    if not commit:
        return "-"
    sha, plus, dirty = commit.partition("+")
    return sha[:7] + plus + dirty


def mixed_commits(groups: dict[Key, list[dict]]) -> list[str]:
    """A note for each row that averages runs of more than one commit: the same settings
    and pipeline, but different code (a change to the network or the engine's step)."""
    return mixed(groups, commits, "commits")


def kept_epoch(record: dict) -> float | None:
    """The epoch of the weights a record scored: a re-evaluated checkpoint's
    (``quality_reeval.py --checkpoint``), else the run's kept epoch (``kept_epoch``; the
    best validated one in records older than it)."""
    for value in ((record.get("checkpoint") or {}).get("epoch"), record.get("kept_epoch")):
        if value is not None:
            return value
    return record.get("best_epoch")


def per_seed(groups: dict[Key, list[dict]]) -> None:
    """One row per run, then the mean over the runs of each (config, budget, precision,
    system, settings); ``-`` where a record lacks the value (older or re-evaluated)."""
    print(
        "| config | system | settings | seed | val IoU at the tuned threshold | test IoU "
        "| epochs | kept epoch | threshold | commit |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (config, _, _, system, changed), rows in sorted(groups.items()):
        for r in sorted(rows, key=lambda r: r["seed"]):
            print(
                f"| {config} | {system} | {changed} | {r['seed']} "
                f"| {number(r.get('val_iou'), 4)} | {r['test_iou']:.4f} "
                f"| {number(r.get('epochs'), 0)} | {number(kept_epoch(r), 0)} "
                f"| {number(r.get('threshold'), 2)} | {short(r.get('commit'))} |"
            )
        print(
            f"| {config} | {system} | {changed} | mean | {number(mean_of(rows, 'val_iou'), 4)} "
            f"| {mean_of(rows, 'test_iou'):.4f} | {mean_of(rows, 'epochs'):.1f} | | | |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="bench/quality.py --out files")
    parser.add_argument("--seeds", action="store_true", help="also one row per run")
    args = parser.parse_args()
    groups: dict[Key, list[dict]] = defaultdict(list)
    for r in read_records(args.files):
        groups[group_key(r)].append(r)
    print(
        "| config | budget | precision | system | runs | test IoU | test Dice | per-image IoU "
        "| epochs | fit s | reference step ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (config, budget, precision, system, changed), rows in sorted(groups.items()):
        print(
            f"| {config} | {budget} | {precision} | {labelled(system, changed)} | {len(rows)} "
            f"| {spread([r['test_iou'] for r in rows])} "
            f"| {spread([r['test_dice'] for r in rows])} "
            f"| {statistics.mean(r['test_image_iou'] for r in rows):.4f} "
            f"| {mean_of(rows, 'epochs'):.1f} | {mean_of(rows, 'fit_s'):.0f} "
            f"| {reference(rows)} |"
        )
    print()
    for ours, theirs, named in gap_pairs(groups):
        gap = iou_gap(groups[ours], groups[theirs])
        print(f"{named}: seglab - {theirs[3]} = {gap:+.4f} test IoU (goal >= +0.03)")
    for line in mixed_pipelines(groups) + mixed_commits(groups):
        print(line)
    if args.seeds:
        print()
        per_seed(groups)


if __name__ == "__main__":
    guarded(main)
