"""Mean and spread over seeds of ``bench/quality.py`` results, as a Markdown table.

    python bench/quality_table.py bench/results/quality.jsonl [more.jsonl ...]

One row per (config, budget, system): the number of runs, test IoU and Dice
(dataset-level, foreground) as mean ± sample standard deviation, the mean per
image IoU, the training steps and the seconds of training loop; then seglab's IoU minus each peer's.
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


def main() -> None:
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for path in sys.argv[1:]:
        with open(path) as fh:
            for line in fh:
                if line.strip():
                    r = json.loads(line)
                    groups[(r["config"], r["budget"], r["system"])].append(r)
    print(
        "| config | budget | system | runs | test IoU | test Dice | per-image IoU "
        "| steps | fit s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (config, budget, system), rows in sorted(groups.items()):
        print(
            f"| {config} | {budget} | {system} | {len(rows)} "
            f"| {spread([r['test_iou'] for r in rows])} "
            f"| {spread([r['test_dice'] for r in rows])} "
            f"| {statistics.mean(r['test_image_iou'] for r in rows):.4f} "
            f"| {statistics.mean(r['steps'] for r in rows):.0f} "
            f"| {statistics.mean(r.get('fit_s', float('nan')) for r in rows):.0f} |"
        )
    print()
    for (config, budget, system), rows in sorted(groups.items()):
        ours = groups.get((config, budget, "seglab"))
        if system == "seglab" or not ours:
            continue
        gap = statistics.mean(r["test_iou"] for r in ours) - statistics.mean(
            r["test_iou"] for r in rows
        )
        print(f"{config} {budget}: seglab - {system} = {gap:+.4f} test IoU (goal >= +0.03)")


if __name__ == "__main__":
    main()
