"""Model folders: safetensors weights plus ``model.json``, enough to predict.

A model folder holds ``model.safetensors`` and ``model.json`` (the model config,
the input normalisation, the threshold and the class count; for a run's epoch ensemble,
``ensemble``: the members' epochs, whose weights are ``members.<i>.*``). It can be loaded
without the training config or data, so ``seglab predict`` works on it alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn

from seglab.config import ModelConfig
from seglab.errors import SeglabError
from seglab.models.ensemble import EpochEnsemble
from seglab.models.exported import FORMAT_FILES, load_exported
from seglab.models.lowrank import apply_factorization
from seglab.models.registry import create_model
from seglab.runs import atomic_write_bytes, atomic_write_json, read_json

WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"


def network_weights(checkpoint: dict[str, Any], prefix: str = "model.") -> dict[str, torch.Tensor]:
    """The network's weights in a loaded Lightning checkpoint of the training module."""
    state = checkpoint["state_dict"]
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def checkpoint_epoch(checkpoint: dict[str, Any]) -> int | None:
    """The epoch a loaded Lightning checkpoint was written in, counted from 1 as in
    ``history.csv`` (Lightning counts from 0); None if it records none."""
    epoch = checkpoint.get("epoch")
    return None if epoch is None else int(epoch) + 1


def read_checkpoint(
    path: str | os.PathLike, prefix: str = "model."
) -> tuple[dict[str, torch.Tensor], int | None]:
    """The network's weights in a Lightning checkpoint file and the epoch (from 1) it was
    written in, read with ``weights_only=True`` (no code is unpickled).

    Raises ``TypeError`` or ``KeyError`` for a file that holds no training-module checkpoint.
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict):
        raise TypeError(f"holds a {type(checkpoint).__name__}, not a checkpoint")
    return network_weights(checkpoint, prefix), checkpoint_epoch(checkpoint)


def save_model_folder(folder: str | os.PathLike, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write weights and ``model.json`` (``meta`` must hold ``model``: the model config)."""
    if "model" not in meta:
        raise ValueError("meta needs the model config under 'model'")
    folder = Path(folder)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(folder / WEIGHTS_FILE, save(state))
    atomic_write_json(folder / META_FILE, meta)
    return folder


def load_model_folder(
    folder: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from a model folder; returns ``(model in eval mode, meta)``."""
    folder = Path(folder)
    meta = read_json(folder / META_FILE) if (folder / META_FILE).is_file() else {}
    fmt = meta.get("format")
    if fmt in FORMAT_FILES and (folder / FORMAT_FILES[fmt]).is_file():  # seglab export
        multiple = int(meta.get("input_multiple", 1))
        return load_exported(folder, fmt, device, multiple).eval(), meta
    if not (folder / META_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise SeglabError(
            f"{folder} is not a model folder (needs {META_FILE} and {WEIGHTS_FILE})",
            hint="pass a run folder that finished training, or its model/ folder",
        )
    meta = read_json(folder / META_FILE)
    config = ModelConfig.model_validate(meta["model"])
    model = create_model(config, warn_ignored=False)
    if meta.get("ensemble"):  # a run's best epochs: one network each, one mean
        members = len(meta["ensemble"]["epochs"])
        model = EpochEnsemble([model] + [create_model(config, False) for _ in range(members - 1)])
    if meta.get("factorized"):  # a compressed model: its low-rank layers, then its weights
        apply_factorization(model, meta["factorized"])
    model.load_state_dict(load_file(folder / WEIGHTS_FILE, device=str(device)))
    return model.to(device).eval(), meta
