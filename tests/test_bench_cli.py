"""The bench scripts end on bad input with one line naming the culprit, and exit code 2."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def run_script(bench_module, monkeypatch, capsys):
    """``run_script(name, *args)``: runs bench/<name>.py as its ``__main__`` block does and
    returns its exit code and the lines it wrote to stderr."""

    def run(name: str, *args: str) -> tuple[int, list[str]]:
        module = bench_module(name)
        monkeypatch.setattr("sys.argv", [f"{name}.py", *args])
        with pytest.raises(SystemExit) as exit_:
            module.guarded(module.main)
        return exit_.value.code, capsys.readouterr().err.splitlines()

    return run


def test_a_missing_config_an_unknown_key_or_a_bad_budget_stops_the_quality_harness(
    run_script, tmp_path
):
    code, err = run_script("quality", str(tmp_path / "nope.yaml"), "--budget", "1m")
    assert code == 2 and len(err) == 1 and "nope.yaml" in err[0]

    config = tmp_path / "tiny.yaml"
    config.write_text("name: tiny\n")
    code, err = run_script("quality", str(config), "--set", "train.bogus=1")
    assert code == 2 and len(err) == 1 and "train.bogus" in err[0]
    # a budget it cannot read stops it before the first run
    code, err = run_script("quality", str(config), "--budget", "10x")
    assert code == 2 and len(err) == 1 and "'10x'" in err[0]


def test_a_results_file_that_is_missing_or_not_json_lines_is_named(run_script, tmp_path):
    code, err = run_script("quality_table", str(tmp_path / "gone.jsonl"))
    assert (code, len(err)) == (2, 1) and "gone.jsonl" in err[0]

    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"system": "seglab"}) + "\n{half a record\n")
    code, err = run_script("quality_table", str(broken))
    assert (code, len(err)) == (2, 1) and f"{broken}:2 " in err[0]


def test_a_run_folder_that_is_gone_is_bad_input_for_a_reevaluation(run_script, tmp_path):
    results = tmp_path / "runs.jsonl"
    results.write_text(json.dumps({"system": "seglab", "run": str(tmp_path / "gone")}) + "\n")
    code, err = run_script("quality_reeval", str(results), "--set", "eval.tta=flips")
    assert code == 2 and len(err) == 1 and str(tmp_path / "gone") in err[0]


def test_anything_else_is_a_bug_and_keeps_its_traceback(bench_module):
    cli = bench_module("bench_cli")
    with pytest.raises(ZeroDivisionError):
        cli.guarded(lambda: 1 / 0)


def test_the_step_parts_script_times_each_part_of_a_configured_step(
    bench_module, run_script, monkeypatch, capsys, tmp_path
):
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "name: tiny\ndata: {patch_size: 32, augment: {rotate_degrees: 10, noise_std: 0.1}}\n"
        "model: {base_channels: 4, depth: 2, deep_supervision: true}\n"
        "train: {batch_size: 2, precision: '32', channels_last: false}\n"
    )
    module = bench_module("train_step_parts")
    monkeypatch.setattr("sys.argv", ["train_step_parts.py", str(config), "--steps", "2"])
    module.main()
    out = capsys.readouterr().out
    assert "batch 2 x 1 x 32 x 32, 32, contiguous, augmentation on" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines()}
    parts = [float(lines[p][1]) for p in ("augment", "forward", "loss", "backward", "optimiser")]
    assert all(t > 0 for t in parts)
    assert float(lines["sum"][1]) == pytest.approx(sum(parts), abs=0.02)

    code, err = run_script("train_step_parts", str(config), "--steps", "0")
    assert code == 2 and len(err) == 1 and "--steps" in err[0]
    code, err = run_script("train_step_parts", str(config), "--set", "train.precision=16-mixed")
    assert code == 2 and len(err) == 1 and "16-mixed" in err[0]


def test_the_inference_precision_bench_names_a_folder_that_holds_no_model(run_script, tmp_path):
    code, err = run_script("inference_precision", "--model", str(tmp_path / "nope"))
    assert code == 2 and len(err) == 1 and "nope is not a model folder" in err[0]


def test_the_inference_precision_bench_times_both_formats(bench_module, monkeypatch, capsys):
    module = bench_module("inference_precision")
    args = ["--height", "32", "--width", "48", "--repeats", "1"]
    monkeypatch.setattr("sys.argv", ["inference_precision.py", *args])
    module.main()
    out = capsys.readouterr().out
    assert "one 32x48 image" in out
    assert "cpu_precision 32 " in out and "cpu_precision bf16-mixed " in out
    assert "cpu_precision bf16-mixed, NCHW" in out
    assert "speed-up" in out
