"""Mean and spread over seeds of ``bench/quality.py`` results, as a Markdown table.

    python bench/quality_table.py bench/results/quality.jsonl [more.jsonl ...]

One row per (config, budget, precision, system): the number of runs, test IoU and Dice
(dataset-level, foreground) as mean ± sample standard deviation, the mean per
image IoU, the epochs trained, the seconds of training loop and the machine's reference
step (``reference_step_ms``, "-" in records made before the harness measured it: a machine
x % slower trains about x % fewer steps in a budget); then seglab's IoU minus each peer's.
(Epochs, not steps: before last.ckpt followed every epoch, a record's ``steps`` counted
only up to the last epoch that improved the validation IoU.)
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict


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


def main() -> None:
    groups: dict[tuple[str, str, str, str], list[dict]] = defaultdict(list)
    for path in sys.argv[1:]:
        with open(path) as fh:
            for line in fh:
                if line.strip():
                    r = json.loads(line)
                    # records from before the harness wrote the precision: "-"
                    key = (r["config"], r["budget"], r.get("precision") or "-", r["system"])
                    groups[key].append(r)
    print(
        "| config | budget | precision | system | runs | test IoU | test Dice | per-image IoU "
        "| epochs | fit s | reference step ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (config, budget, precision, system), rows in sorted(groups.items()):
        print(
            f"| {config} | {budget} | {precision} | {system} | {len(rows)} "
            f"| {spread([r['test_iou'] for r in rows])} "
            f"| {spread([r['test_dice'] for r in rows])} "
            f"| {statistics.mean(r['test_image_iou'] for r in rows):.4f} "
            f"| {mean_of(rows, 'epochs'):.1f} | {mean_of(rows, 'fit_s'):.0f} "
            f"| {reference(rows)} |"
        )
    print()
    for (config, budget, precision, system), rows in sorted(groups.items()):
        ours = groups.get((config, budget, precision, "seglab"))
        if system == "seglab" or not ours:
            continue
        gap = statistics.mean(r["test_iou"] for r in ours) - statistics.mean(
            r["test_iou"] for r in rows
        )
        where = f"{config} {budget}" + ("" if precision == "-" else f" {precision}")
        print(f"{where}: seglab - {system} = {gap:+.4f} test IoU (goal >= +0.03)")


if __name__ == "__main__":
    main()
