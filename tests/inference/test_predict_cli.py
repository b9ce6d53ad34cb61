"""`seglab predict` end to end through the CLI: folders of PNGs and TIFF stacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from seglab.cli import main
from seglab.config import ModelConfig
from seglab.inference.settings import InferenceSettings
from seglab.models.io import save_model_folder
from seglab.models.registry import create_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A model folder as training leaves it, without any run or training data around it."""
    torch.manual_seed(0)
    cfg = ModelConfig(depth=2, base_channels=4)
    meta = {
        "model": cfg.model_dump(mode="json"),
        "normalization": {"mean": [0.45], "std": [0.2]},
        "threshold": 0.5,
        "num_classes": 1,
        "in_channels": 1,
        "inference": InferenceSettings(window=32, batch_windows=3).to_json(),
    }
    return save_model_folder(tmp_path_factory.mktemp("export") / "model", create_model(cfg), meta)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_predict_a_folder_of_pngs(model_dir, tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = tmp_path / "images"
    images.mkdir()
    sizes = {
        "a": (40, 30),
        "b": (70, 45),
        "c": (17, 23),
    }  # (height, width); one larger than a window
    for stem, size in sizes.items():
        Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(images / f"{stem}.png")
    out = tmp_path / "out"
    args = ["predict", str(model_dir), str(images), "--out", str(out), "--probabilities"]
    assert main([*args, "--overlays"]) == 0
    assert "9 file(s) written" in capsys.readouterr().out
    for stem, size in sizes.items():
        mask = np.asarray(Image.open(out / f"{stem}.png"))
        prob = tifffile.imread(out / f"{stem}_prob.tif")
        overlay = np.asarray(Image.open(out / f"{stem}_overlay.png"))
        assert mask.shape == size and prob.shape == size and overlay.shape == (*size, 3)
        assert set(np.unique(mask)) <= {0, 255}
        assert np.array_equal(mask == 255, prob > 0.5)


def test_predict_a_tiff_stack_slice_by_slice(model_dir, tmp_path):
    rng = np.random.default_rng(1)
    stack = rng.integers(0, 65536, (5, 33, 47), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "volume.tif", stack)
    tifffile.imwrite(tmp_path / "slice2.tif", stack[2])  # one page: a plain image
    out = tmp_path / "out"
    inputs = [str(tmp_path / "volume.tif"), str(tmp_path / "slice2.tif")]
    args = ["predict", str(model_dir), *inputs, "--out", str(out), "--probabilities", "--overlays"]
    assert main(args) == 0
    masks = tifffile.imread(out / "volume.tif")
    probs = tifffile.imread(out / "volume_prob.tif")
    assert masks.shape == (5, 33, 47) and masks.dtype == np.uint8
    assert probs.shape == (5, 33, 47) and probs.dtype == np.float32
    assert tifffile.imread(out / "volume_overlay.tif").shape == (5, 33, 47, 3)
    assert np.array_equal(masks == 255, probs > 0.5)
    # a slice of the stack is predicted exactly like the same image on its own
    assert np.allclose(tifffile.imread(out / "slice2_prob.tif"), probs[2], atol=1e-6)


def test_predict_with_tta_and_a_run_folder_layout(model_dir, tmp_path):
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    for f in model_dir.iterdir():
        (run / "model" / f.name).write_bytes(f.read_bytes())
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "x.jpg")
    assert (
        main(["predict", str(run), str(tmp_path / "x.jpg"), "--out", str(tmp_path), "--tta"]) == 0
    )
    assert (tmp_path / "x.png").is_file()


def test_predict_chooses_the_cpu_precision_and_says_which(model_dir, tmp_path, caplog):
    image = np.random.default_rng(1).integers(0, 256, (40, 30), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "x.png")
    masks, probabilities = {}, {}
    for precision in ("32", "bf16"):
        out = tmp_path / precision
        caplog.clear()
        with caplog.at_level("INFO", logger="seglab"):
            args = ["predict", str(model_dir), str(tmp_path / "x.png"), "--out", str(out)]
            assert main([*args, "--probabilities", "--cpu-precision", precision]) == 0
        spelled = "32" if precision == "32" else "bf16-mixed"
        assert f"forward passes on cpu in {spelled}" in caplog.text
        masks[precision] = np.asarray(Image.open(out / "x.png"))
        probabilities[precision] = tifffile.imread(out / "x_prob.tif")
    assert probabilities["bf16"].dtype == np.float32
    assert 0 < np.abs(probabilities["bf16"] - probabilities["32"]).max() < 0.05
    assert (masks["bf16"] != masks["32"]).mean() < 0.02


def test_predict_bad_inputs_are_one_line_errors(model_dir, tmp_path, capsys):
    assert (
        main(["predict", str(model_dir), str(tmp_path / "nope.png"), "--out", str(tmp_path)]) == 2
    )
    assert "input not found" in one_line_error(capsys)
    assert main(["predict", str(tmp_path), str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "neither a run folder" in one_line_error(capsys)
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8, 3), np.uint8)).save(rgb)
    assert main(["predict", str(model_dir), str(rgb), "--out", str(tmp_path / "o")]) == 2
    assert "expects 1" in one_line_error(capsys)
    tif = tmp_path / "t.tif"
    tifffile.imwrite(tif, np.zeros((4, 4), np.uint8))
    assert main(["predict", str(model_dir), str(tif), "--out", str(tmp_path)]) == 2
    assert "would overwrite it" in one_line_error(capsys)
    args = ["predict", str(model_dir), str(rgb), "--out", str(tmp_path / "o2")]
    assert main([*args, "--cpu-precision", "16"]) == 2
    assert "--cpu-precision '16'" in one_line_error(capsys)
