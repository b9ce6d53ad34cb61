"""Checkpoint files written atomically and read without unpickling code."""

from __future__ import annotations

import io
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from seglab.runs import atomic_write_bytes


class SafeCheckpointIO(TorchCheckpointIO):
    """Saves through temp file + rename; loads with ``weights_only=True`` only."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:  # noqa: ANN001
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:  # noqa: ANN001
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)
