"""``seglab export``: a run's model (original or compressed) as ONNX or TorchScript.

The export goes into a new model folder (``model.onnx`` or ``model.pt`` plus
``model.json`` with ``"format"``), by default ``<run>/export/<format>/``, which
``seglab predict`` loads like any model folder. Height and width (and batch)
are dynamic; the export is checked against PyTorch on an input of another size.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from seglab.compress.export import check_export, export_onnx, export_torchscript
from seglab.errors import SeglabError
from seglab.models.exported import FORMAT_FILES, input_multiple, load_exported, require_onnx
from seglab.models.io import META_FILE, load_model_folder
from seglab.pipeline.common import log, model_folder_of
from seglab.runs import MODEL_DIR, atomic_write_json

EXPORT_DIR = "export"


def export_model(
    model_path: str | os.PathLike,
    fmt: str = "onnx",
    out: str | os.PathLike | None = None,
    size: int = 256,
) -> Path:
    if fmt not in FORMAT_FILES:
        raise SeglabError(f"--format {fmt!r} is not known", hint="use onnx or torchscript")
    if fmt == "onnx":
        require_onnx("--format onnx")
    folder = model_folder_of(model_path)
    model, meta = load_model_folder(folder, "cpu")
    if meta.get("format"):
        raise SeglabError(f"{folder} is already an exported model", hint="export a run folder")
    home = folder.parent if folder.name == MODEL_DIR else folder
    target = Path(out) if out is not None else home / EXPORT_DIR / fmt
    if (target / META_FILE).exists():
        raise SeglabError(f"{target} already holds an export", hint="pass --out NEW_FOLDER")
    channels = int(meta.get("in_channels", meta["model"].get("in_channels", 1)))
    example = torch.randn(1, channels, size, size)
    path = target / FORMAT_FILES[fmt]
    if fmt == "onnx":
        export_onnx(model, example, path)
    else:
        export_torchscript(model, example, path)
    multiple = input_multiple(model)
    other = (2, channels, size // 2 + 3, size + 37)  # not the example's size, nor a multiple
    diff = check_export(model, load_exported(target, fmt, multiple=multiple), other)
    exported = {**meta, "format": fmt, "input_multiple": multiple, "exported_from": str(folder)}
    atomic_write_json(target / META_FILE, exported)
    log.info(
        "%s written to %s (checked on %dx%d: max abs difference %.2g from PyTorch)",
        fmt,
        path,
        other[2],
        other[3],
        diff,
    )
    return target
