"""Reports of a real tiny run: `seglab report`, `seglab compare`, escaping, and Chromium.

One run is trained once for the module on a folder dataset whose file names are
markup (a POSIX file name cannot hold "/", so ``</script>`` is written with U+2215,
the division slash); the run folder is copied to a second folder whose name is
markup too, so that the comparison page shows it.
"""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.cli import main
from seglab.report.comparison import COMPARISON_COLUMNS
from seglab.report.run_facts import SUMMARY_COLUMNS
from tests.conftest import TINY
from tests.report.browser import chromium, probe_page

PAYLOAD = "<script>alert({i})<\u2215script>"  # the file names, one per image
ESCAPED = "&lt;script&gt;alert("
RUN_PAYLOAD = "<img src=x onerror=alert(2)>"


def _payload_dataset(root: Path, n: int = 10) -> Path:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        image = rng.integers(0, 256, (40, 40), dtype=np.uint8)
        mask = np.zeros((40, 40), dtype=np.uint8)
        mask[8:24, 6 + i : 26 + i] = 255
        image[mask > 0] //= 3  # something a model can find
        name = PAYLOAD.format(i=i) + ".png"
        Image.fromarray(image).save(root / "images" / name)
        Image.fromarray(mask).save(root / "masks" / name)
    return root


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("pages")
    data = _payload_dataset(base / "data")
    overrides = [*TINY, "data.source=folder", f"data.root={data}", "model.in_channels=1"]
    overrides += ["train.epochs=2"]
    args = ["run", "--runs-dir", str(base / "runs")]
    assert main([*args, *(x for o in overrides for x in ("--set", o))]) == 0
    (run,) = (base / "runs").iterdir()
    assert main(["report", str(run)]) == 0
    twin = shutil.copytree(run, base / "runs" / RUN_PAYLOAD)
    comparison = base / "out" / "comparison.html"
    assert main(["compare", str(run), str(twin), "--out", str(comparison)]) == 0
    return {
        "run": run,
        "data_check": run / "data_check.html",
        "report": run / "report.html",
        "comparison": comparison,
    }


def test_report_command_rewrites_report_and_summary(pages: dict[str, Path]) -> None:
    run = pages["run"]
    with open(run / "performance_summary.csv", newline="", encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))
    assert tuple(row) == SUMMARY_COLUMNS
    assert int(row["parameters"]) > 0 and float(row["gmacs"]) > 0
    assert row["macs_input"] == "1x1x32x32" and row["best_epoch"] and row["stopped_because"]
    assert float(row["test_iou_ci_low"]) <= float(row["test_iou"]) <= float(row["test_iou_ci_high"])
    assert row["train_iou"] and row["val_iou"]  # the generalisation gap is measured
    gap = float(row["train_iou"]) - float(row["val_iou"])
    assert float(row["gap_iou"]) == pytest.approx(gap, abs=1e-5)
    html = pages["report"].read_text(encoding="utf-8")
    assert html.count('alt="prediction ') == 2  # eval.n_overlays=2, predicted again
    for label in ("parameters", "time per epoch", "peak memory", "stability", "generalisation"):
        assert label in html


def test_comparison_csv_of_a_run_and_its_copy(pages: dict[str, Path]) -> None:
    with open(pages["comparison"].with_name("comparison.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COMPARISON_COLUMNS and len(rows) == 2
    # the same predictions: no difference, and an interval that includes zero
    assert float(rows[1]["paired_difference"]) == 0.0
    assert rows[1]["paired_excludes_zero"] == "False"


@pytest.mark.parametrize("page", ["data_check", "report", "comparison"])
def test_markup_in_file_and_folder_names_is_text(pages: dict[str, Path], page: str) -> None:
    html = pages[page].read_text(encoding="utf-8")
    assert not re.search(r"<script\b", html, re.I)
    assert not re.search(r"<img src=x", html) and " onerror=alert" not in html.replace(
        "&lt;img src=x onerror=alert", ""
    )
    wanted = "&lt;img src=x onerror=alert(2)&gt;" if page == "comparison" else ESCAPED
    assert wanted in html


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed")
@pytest.mark.parametrize("page", ["report", "comparison"])
def test_page_loads_in_chromium_without_errors_or_requests(
    pages: dict[str, Path], page: str, tmp_path: Path
) -> None:
    probe, requests = probe_page(pages[page], tmp_path)
    assert probe["errors"] == [] and probe["resources"] == [] and requests == []
    assert probe["scripts"] == 1  # the probe itself: the page has none
    assert probe["images"] >= 2 and probe["broken"] == 0
    if page == "report":
        assert {"config-summary", "training", "data", "test-metrics"} <= set(probe["table_ids"])
        assert probe["image_ids"] == ["curves"]
        assert probe["images"] == 1 + 3 * 2  # curves + image, truth, prediction of 2 overlays
    else:
        assert probe["table_ids"] == ["test", "runs", "paired"]
        assert probe["image_ids"] == ["bars", "curves"]


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed")
def test_chromium_probe_catches_a_request_and_a_broken_image(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><head><title>x</title></head><body><table id="t"></table>'
        '<img src="http://127.0.0.1:9/x.png"><img src="data:image/png;base64,AAAA"></body></html>',
        encoding="utf-8",
    )
    probe, requests = probe_page(page, tmp_path / "work")
    assert probe["broken"] == 2
    assert probe["resources"] == ["http://127.0.0.1:9/x.png"]
    assert requests == ["http://127.0.0.1:9/x.png"]
