"""bench/quality_standing.py: the standing table is computed from the results files, refuses
rows that do not compare like with like, and is the table the README and the docs show."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARK = "<!-- table: python bench/quality_standing.py -->"


def record(system: str, seed: int, test_iou: float, **extra) -> dict:
    return {
        "config": "lucchi",
        "system": system,
        "seed": seed,
        "budget": "10m",
        "precision": "32",
        "test_iou": test_iou,
        **extra,
    }


@pytest.fixture
def standing(bench_module, tmp_path, monkeypatch):
    """``standing(files, rows)``: writes each results file of ``files`` (name -> records) and
    a manifest of ``rows`` under tmp_path, and returns the module and the manifest's path."""
    module = bench_module("quality_standing")
    monkeypatch.setattr(module, "RESULTS", tmp_path)

    def write(files: dict[str, list[dict]], rows: list[dict]):
        for name, records in files.items():
            (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in records))
        manifest = tmp_path / "standing.yaml"
        manifest.write_text(json.dumps({"rows": rows}))  # JSON is YAML
        return module, manifest

    return write


def row(**files) -> dict:
    return {
        "cpu": "test CPU",
        "dataset": "lucchi",
        "config": "as committed",
        "section": "s",
        "files": files,
    }


def test_leads_are_differences_of_means_judged_against_the_goal(standing):
    runs = [record("seglab", 0, 0.86), record("seglab", 1, 0.88), record("smp", 0, 0.83)]
    runs += [record("smp", 1, 0.85), record("monai", 0, 0.85)]
    module, manifest = standing(
        {"a.jsonl": runs}, [row(seglab=["a.jsonl"], smp=["a.jsonl"], monai=["a.jsonl"])]
    )
    (line,) = module.table(module.standing(manifest))[2:]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[5:] == [
        "0.8700 ± 0.0141 (2)",
        "0.8400 ± 0.0141 (2)",
        "0.8500 (1 run)",
        "+0.0300 met",
        "+0.0200 short",
    ]


def test_a_peer_that_did_not_run_is_said_so(standing):
    module, manifest = standing({"a.jsonl": [record("seglab", 0, 0.8)]}, [row(seglab=["a.jsonl"])])
    (line,) = module.table(module.standing(manifest))[2:]
    assert line.endswith("| 0.8000 (1 run) | not run | not run | - | - |")


@pytest.mark.parametrize(
    ("peer", "message"),
    [
        (record("smp", 0, 0.8, budget="5m"), "differ in budget"),
        (record("smp", 0, 0.8, precision="bf16-mixed"), "differ in precision"),
        (record("smp", 0, 0.8, config="deepcrack"), "differ in dataset"),
        (record("smp", 0, 0.8, pipeline="bbb"), "seglab and smp ran different pipelines"),
    ],
)
def test_a_row_that_would_compare_unlike_runs_is_refused(standing, peer, message):
    files = {"a.jsonl": [record("seglab", 0, 0.9, pipeline="aaa")], "b.jsonl": [peer]}
    module, manifest = standing(files, [row(seglab=["a.jsonl"], smp=["b.jsonl"])])
    with pytest.raises(module.StandingError, match=message):
        module.standing(manifest)


def test_bad_manifests_get_one_line_that_names_the_culprit(standing, monkeypatch, capsys):
    module, manifest = standing(
        {"a.jsonl": [record("seglab", 0, 0.9)]}, [row(seglab=["gone.jsonl"])]
    )
    monkeypatch.setattr("sys.argv", ["quality_standing.py", str(manifest)])
    with pytest.raises(SystemExit) as exit_:
        module.guarded(module.main)  # what running the script does
    assert exit_.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "gone.jsonl" in line and "row 1 (test CPU, lucchi)" in line

    for bad, message in [
        (row(seglab=["a.jsonl"], smp=["a.jsonl"]), "holds no smp run"),
        ({**row(seglab=["a.jsonl"]), "gpu": "x"}, "unknown gpu"),
        ({**row(seglab=["a.jsonl"]), "dataset": "deepcrack"}, "of lucchi, not deepcrack"),
        (row(smp=["a.jsonl"]), "files must map seglab"),
        (row(seglab="a.jsonl"), "files must map seglab"),  # a name, not a list of names
    ]:
        module, manifest = standing({}, [bad])
        with pytest.raises(module.StandingError, match=message):
            module.standing(manifest)


def shown_table(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    assert MARK in text, f"{path.name} lost the standing table's marker"
    after = text.split(MARK, 1)[1].lstrip("\n").splitlines()
    return [line for line in after[: next(i for i, s in enumerate(after) if not s.startswith("|"))]]


def test_the_readme_and_docs_show_the_table_the_results_give(bench_module):
    module = bench_module("quality_standing")
    rows = module.standing()
    expected = module.table(rows)
    assert shown_table(ROOT / "README.md") == expected
    assert shown_table(ROOT / "docs" / "benchmarks.md") == expected
    headings = re.findall(r"^#+ (.+)$", (ROOT / "docs" / "benchmarks.md").read_text(), re.M)
    assert [r["section"] for r in rows if r["section"] not in headings] == []
