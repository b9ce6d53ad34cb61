"""Where the quality goal stands: one Markdown row per kind of CPU and dataset.

    python bench/quality_standing.py [bench/standing.yaml] [--sources]

Reads the manifest (default ``bench/standing.yaml``): for each row, the CPU, the dataset,
the config the runs used, the docs/benchmarks.md section that describes them and the
``bench/quality.py`` results files (in bench/results) of seglab and each peer. Prints, per
row, each system's test IoU (dataset-level, foreground) as mean ± sample standard deviation
with the number of runs, and seglab's lead over each peer against the goal of +0.03.
``--sources`` adds, under the table, the section and files behind each row.

The numbers are those ``bench/quality_table.py`` prints for the same files (its
``iou_gap`` and ``pipelines``); this script
only puts the latest row of each machine side by side. It refuses a row whose records
disagree with it or with each other (another dataset, budget or precision, or two
different pipeline fingerprints between seglab and a peer), so a table it prints compares
like with like.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import yaml
from bench_cli import guarded, read_records
from quality_table import iou_gap, pipelines

from seglab.errors import SeglabError

RESULTS = Path(__file__).resolve().parent / "results"
MANIFEST = Path(__file__).resolve().parent / "standing.yaml"
SYSTEMS = {"seglab": "seglab", "smp": "SMP Unet(resnet18)", "monai": "MONAI BasicUNet"}
PEERS = ("smp", "monai")
ROW_KEYS = {"cpu", "dataset", "config", "section", "files"}
GOAL = 0.03


class StandingError(SeglabError):
    """A manifest or results file that cannot give an honest row."""


def load_records(name: str, system: str, where: str) -> list[dict]:
    path = RESULTS / name
    if not path.is_file():
        raise StandingError(f"{where}: no results file {path}; name a file in bench/results")
    records = [r for r in read_records([path]) if r.get("system") == system]
    if not records:
        raise StandingError(f"{where}: {path.name} holds no {system} run; name the file with them")
    return records


def only(values: set, what: str, where: str) -> str:
    if len(values) != 1:
        raise StandingError(f"{where}: the runs differ in {what} ({', '.join(sorted(values))})")
    return next(iter(values))


def check_row(row: object, index: int) -> dict:
    where = f"row {index + 1}"
    if not isinstance(row, dict):
        raise StandingError(f"{where}: expected a mapping with {', '.join(sorted(ROW_KEYS))}")
    missing, unknown = ROW_KEYS - row.keys(), row.keys() - ROW_KEYS
    if missing or unknown:
        parts = [f"missing {', '.join(sorted(missing))}"] if missing else []
        parts += [f"unknown {', '.join(sorted(unknown))}"] if unknown else []
        raise StandingError(f"{where}: {'; '.join(parts)}")
    files = row["files"]
    if (
        not isinstance(files, dict)
        or "seglab" not in files
        or not set(files) <= set(SYSTEMS)
        or not all(isinstance(names, list) and names for names in files.values())
    ):
        raise StandingError(f"{where}: files must map seglab (and smp, monai) to lists of files")
    return row


def standing(manifest: Path = MANIFEST) -> list[dict]:
    """One entry per manifest row: its fields, precision and budget, and per system the
    records of its runs (``runs``), in manifest order."""
    try:
        data = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise StandingError(f"{manifest}: cannot read the manifest ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise StandingError(f"{manifest}: expected `rows:`, a list of rows")
    out = []
    for index, row in enumerate(data["rows"]):
        row = check_row(row, index)
        where = f"row {index + 1} ({row['cpu']}, {row['dataset']})"
        runs = {
            system: [r for name in names for r in load_records(name, system, where)]
            for system, names in row["files"].items()
        }
        every = [r for records in runs.values() for r in records]
        only({r["config"] for r in every}, "dataset", where)
        if every[0]["config"] != row["dataset"]:
            raise StandingError(
                f"{where}: the runs are of {every[0]['config']}, not {row['dataset']}"
            )
        budget = only({r["budget"] for r in every}, "budget", where)
        precision = only({r.get("precision") or "-" for r in every}, "precision", where)
        prints = {system: pipelines(records) for system, records in runs.items()}
        for peer in PEERS:
            if prints.get(peer) and prints["seglab"] and prints[peer] != prints["seglab"]:
                raise StandingError(f"{where}: seglab and {peer} ran different pipelines")
        out.append({**row, "budget": budget, "precision": precision, "runs": runs})
    return out


def cell(runs: list[dict] | None) -> str:
    if not runs:
        return "not run"
    ious = [r["test_iou"] for r in runs]
    if len(ious) == 1:
        return f"{ious[0]:.4f} (1 run)"
    return f"{statistics.mean(ious):.4f} ± {statistics.stdev(ious):.4f} ({len(ious)})"


def lead(ours: list[dict], theirs: list[dict] | None) -> str:
    if not theirs:
        return "-"
    gap = iou_gap(ours, theirs)
    verdict = "met" if gap >= GOAL else "short"
    return f"{gap:+.4f} {verdict}"


def table(rows: list[dict]) -> list[str]:
    head = ["CPU", "dataset", "config", "budget", "precision"]
    head += [SYSTEMS[s] for s in SYSTEMS] + [f"seglab − {SYSTEMS[p].split()[0]}" for p in PEERS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        runs = row["runs"]
        cells = [row["cpu"], row["dataset"], row["config"], row["budget"], row["precision"]]
        cells += [cell(runs.get(s)) for s in SYSTEMS]
        cells += [lead(runs["seglab"], runs.get(p)) for p in PEERS]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def sources(rows: list[dict]) -> list[str]:
    lines = []
    for row in rows:
        files = sorted({name for names in row["files"].values() for name in names})
        lines.append(
            f'- {row["cpu"]}, {row["dataset"]}: section "{row["section"]}"; '
            + ", ".join(f"`bench/results/{name}`" for name in files)
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", nargs="?", type=Path, default=MANIFEST)
    parser.add_argument(
        "--sources", action="store_true", help="also the section and files of each row"
    )
    args = parser.parse_args()
    rows = standing(args.manifest)
    lines = table(rows)
    if args.sources:
        lines += ["", *sources(rows)]
    print("\n".join(lines))


if __name__ == "__main__":
    guarded(main)
