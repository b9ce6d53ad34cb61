import json
import shutil

import numpy as np
import pytest
from PIL import Image

from seglab.cli import main
from seglab.config import load_config
from seglab.data.check import check_data
from seglab.data.readers import clear_cache
from tests.conftest import write_folder_dataset


@pytest.fixture(autouse=True)
def _no_cache():
    clear_cache()
    yield
    clear_cache()


def corrupt(root):
    """One of each problem the check must name, on a small clean folder dataset."""
    images, masks = root / "images", root / "masks"
    data = (images / "img1.png").read_bytes()
    (images / "img1.png").write_bytes(data[: len(data) // 2])  # truncated PNG
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(masks / "img2.png")  # wrong size
    yy, xx = np.mgrid[:40, :32]
    disc = (((yy - 19.5) ** 2 + (xx - 14.2) ** 2) < 90).astype(np.uint8) * 255
    (masks / "img3.png").unlink()
    Image.fromarray(disc).save(masks / "img3.jpg", quality=50)  # lossy mask
    shutil.copy(images / "img0.png", images / "lonely.png")  # image without a mask
    for i in (0, 4, 5, 6, 7, 8, 9):  # exact copies of img0: some land in another split
        if i:
            shutil.copy(images / "img0.png", images / f"copy{i}.png")
            shutil.copy(masks / "img0.png", masks / f"copy{i}.png")


def test_check_names_each_problem_and_its_file(tmp_path):
    root = write_folder_dataset(tmp_path / "d", n=12)
    corrupt(root)
    cfg = load_config(None, ["data.source=folder", f"data.root={root}"])
    result = check_data(cfg)
    found = {(i.severity, i.file): i.problem for i in result.issues}
    assert "truncated" in found[("error", "img1.png")]
    assert "mask is 10x10 but image img2.png is 32x40" in found[("error", "img2.png")]
    assert "grey level" in found[("warning", "img3.jpg")]
    assert "JPEG" in found[("warning", "img3.jpg")]
    assert "without a mask" in found[("error", "lonely.png")]
    leaks = [i for i in result.errors if "exact duplicate" in i.problem and "leakage" in i.problem]
    assert leaks, result.issues
    assert len(result.thumbnails) > 1


def test_cli_exits_2_on_errors_and_writes_both_reports(tmp_path, capsys):
    root = write_folder_dataset(tmp_path / "d", n=6)
    corrupt(root)
    assert main(["check-data", str(root), "--out", str(tmp_path / "out")]) == 2
    report = json.loads((tmp_path / "out" / "data_check.json").read_text())
    assert report["ok"] is False and report["summary"]["n_errors"] >= 3
    html = (tmp_path / "out" / "data_check.html").read_text()
    assert "img1.png" in html and "data:image/png;base64," in html
    assert "error: img2.png: mask is 10x10" in capsys.readouterr().out.replace("\n", " ")


def test_cli_exits_0_with_warnings_only(tmp_path):
    root = write_folder_dataset(tmp_path / "d", n=5)
    mask = np.zeros((40, 32), np.uint8)
    mask[0, 0] = 255  # 0.08% foreground: a warning, not an error
    Image.fromarray(mask).save(root / "masks" / "img0.png")
    assert main(["check-data", str(root), "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "data_check.json").read_text())
    assert report["ok"] and any("< 1%" in i["problem"] for i in report["issues"])


def test_run_stops_on_data_errors_before_making_a_run_folder(tmp_path, capsys, tiny_overrides):
    root = write_folder_dataset(tmp_path / "d", n=5)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "masks" / "img2.png")
    runs = tmp_path / "runs"
    args = ["run", "--runs-dir", str(runs), "--set", "data.source=folder"]
    args += ["--set", f"data.root={root}"] + [x for o in tiny_overrides for x in ("--set", o)]
    assert main(args) == 2
    assert "data check: 1 error(s); first: img2.png" in capsys.readouterr().err
    assert not runs.exists() or not any(runs.iterdir())


def test_channel_count_must_match_the_model(tmp_path):
    root = write_folder_dataset(tmp_path / "d", n=4)
    cfg = load_config(None, ["data.source=folder", f"data.root={root}", "model.in_channels=3"])
    assert any("model.in_channels is 3" in i.problem for i in check_data(cfg).errors)
