"""Run folders: unique, never overwritten, every file written atomically.

A run folder is ``<root>/<UTC timestamp>_<name>_<6-char id>/``. It is created
with ``mkdir`` (which fails if the folder exists), so two runs never share a
folder. Every file is written to a temporary sibling and renamed into place, so
a reader sees either the old file or the whole new one, never half of it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from seglab.errors import SeglabError

CONFIG_FILE = "config.yaml"
ENVIRONMENT_FILE = "environment.json"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
SPLIT_FILE = "split.json"
REPORT_FILE = "report.html"
LOG_FILE = "train.log"
CHECKPOINT_DIR = "checkpoints"
MODEL_DIR = "model"
RUN_DIR_ENV = "SEGLAB_RUN_DIR"  # DDP child processes train into their parent's run folder

_NAME_OK = re.compile(r"[^A-Za-z0-9_.-]+")


# --------------------------------------------------------------------------- atomic writes


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Turn numpy/torch scalars and arrays, paths and tuples into plain JSON values.

    Non-finite floats become ``None`` so the file stays valid JSON.
    """
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    # numpy and torch scalars / arrays (duck-typed: this module imports neither)
    if hasattr(obj, "tolist"):
        return to_jsonable(obj.tolist())
    if hasattr(obj, "item"):
        return to_jsonable(obj.item())
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def atomic_write_yaml(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, yaml.safe_dump(to_jsonable(obj), sort_keys=False))


def atomic_write_csv(
    path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], fieldnames: list[str]
) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fieldnames, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in fieldnames})
    return atomic_write_text(path, buf.getvalue())


def _csv_value(value: Any) -> Any:
    value = to_jsonable(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


# --------------------------------------------------------------------------- run folders


def run_folder_name(name: str, now: datetime | None = None, token: str | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    safe = _NAME_OK.sub("-", name).strip("-.") or "run"
    return f"{now.strftime('%Y%m%d-%H%M%S')}_{safe}_{token or secrets.token_hex(3)}"


class Run:
    """A run folder on disk."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, root: str | os.PathLike, name: str) -> Run:
        """Make a new, empty, uniquely named run folder under ``root``."""
        root = Path(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SeglabError(
                f"cannot create runs folder {root}: {exc.strerror}",
                hint="pass --runs-dir with a writable folder",
            ) from exc
        for _ in range(20):
            path = root / run_folder_name(name)
            try:
                path.mkdir()  # fails if it exists: a run folder is never reused
            except FileExistsError:
                continue
            (path / CHECKPOINT_DIR).mkdir()
            return cls(path)
        raise RuntimeError(f"could not find a free run folder name under {root}")

    @classmethod
    def open(cls, path: str | os.PathLike) -> Run:
        """An existing run folder (one that holds a config.yaml)."""
        path = Path(path)
        if not path.is_dir():
            raise SeglabError(
                f"run folder not found: {path}", hint="pass a folder under runs/ made by seglab"
            )
        if not (path / CONFIG_FILE).is_file():
            raise SeglabError(
                f"{path} is not a seglab run folder (no {CONFIG_FILE})",
                hint="pass a folder under runs/ made by seglab",
            )
        return cls(path)

    def file(self, relative: str) -> Path:
        return self.path / relative

    def has(self, relative: str) -> bool:
        return (self.path / relative).exists()

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def model_dir(self) -> Path:
        return self.path / MODEL_DIR

    def write_text(self, relative: str, text: str) -> Path:
        return atomic_write_text(self.file(relative), text)

    def write_json(self, relative: str, obj: Any) -> Path:
        return atomic_write_json(self.file(relative), obj)

    def write_yaml(self, relative: str, obj: Any) -> Path:
        return atomic_write_yaml(self.file(relative), obj)

    def write_csv(
        self, relative: str, rows: Iterable[Mapping[str, Any]], fieldnames: list[str]
    ) -> Path:
        return atomic_write_csv(self.file(relative), rows, fieldnames)

    def read_json(self, relative: str) -> Any:
        return read_json(self.file(relative))


# --------------------------------------------------------------------------- environment


def git_commit(directory: str | os.PathLike) -> str | None:
    """The commit of the git checkout holding ``directory``, if any (``+dirty`` when changed)."""
    try:
        out = subprocess.run(
            ["git", "-C", os.fspath(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", os.fspath(directory), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{out}+dirty" if dirty else out


def describe_environment(device: str | None = None) -> dict[str, Any]:
    """Versions, device and git commit, for ``environment.json``."""
    import platform

    import torch  # imported here so this module stays light

    from seglab import __version__

    env: dict[str, Any] = {
        "seglab": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "git_commit": git_commit(Path(__file__).resolve().parent),
        "cwd_git_commit": git_commit(Path.cwd()),
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
    for pkg in ("lightning", "timm", "torchmetrics", "kornia", "numpy"):
        try:
            env[pkg] = __import__(pkg).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is not an error here
            env[pkg] = None
    return env
