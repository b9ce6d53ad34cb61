import json
import os

import numpy as np
import pytest
import torch

from seglab.errors import SeglabError
from seglab.runs import Run, atomic_write_json, atomic_write_text, to_jsonable


def test_run_folders_are_unique_and_well_named(tmp_path):
    a = Run.create(tmp_path, "my exp/1")
    b = Run.create(tmp_path, "my exp/1")
    assert a.path != b.path
    for run in (a, b):
        stamp, name, token = run.name.split("_")
        assert len(stamp) == 15 and name == "my-exp-1" and len(token) == 6
        assert (run.path / "checkpoints").is_dir()


def test_an_existing_folder_is_never_reused(tmp_path, monkeypatch):
    taken = tmp_path / "20260101-000000_x_aaaaaa"
    taken.mkdir()
    (taken / "keep.txt").write_text("old")
    names = iter([taken.name, "20260101-000000_x_bbbbbb"])
    monkeypatch.setattr("seglab.runs.run_folder_name", lambda name: next(names))
    run = Run.create(tmp_path, "x")
    assert run.path.name.endswith("bbbbbb")
    assert (taken / "keep.txt").read_text() == "old"
    assert sorted(p.name for p in taken.iterdir()) == ["keep.txt"]


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write_text(path, "first")
    atomic_write_text(path, "second")
    assert path.read_text() == "second"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "m.json"
    atomic_write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["m.json"]


def test_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.txt"
    atomic_write_text(path, "old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("seglab.runs.os.replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["m.txt"]


def test_json_handles_numpy_and_torch_scalars(tmp_path):
    obj = {
        "np_float": np.float32(0.5),
        "np_int": np.int64(3),
        "torch": torch.tensor(2.5),
        "array": np.arange(3),
        "nan": float("nan"),
        "tuple": (1, 2),
        "bool": np.bool_(True),
    }
    path = atomic_write_json(tmp_path / "x.json", obj)
    loaded = json.loads(path.read_text())
    assert loaded == {
        "np_float": 0.5,
        "np_int": 3,
        "torch": 2.5,
        "array": [0, 1, 2],
        "nan": None,
        "tuple": [1, 2],
        "bool": True,
    }
    assert to_jsonable(torch.tensor([1, 2])) == [1, 2]


def test_opening_something_that_is_not_a_run(tmp_path):
    with pytest.raises(SeglabError, match="run folder not found"):
        Run.open(tmp_path / "missing")
    with pytest.raises(SeglabError, match="not a seglab run folder"):
        Run.open(tmp_path)
