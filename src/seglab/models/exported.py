"""Exported models (ONNX, TorchScript) behind the ``nn.Module`` interface, for prediction.

A model folder written by ``seglab export`` holds ``model.onnx`` or ``model.pt``
(TorchScript) and ``model.json`` with ``"format"`` naming which; load_model_folder
returns one of these so ``seglab predict`` and the evaluation code use it as any model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

ONNX_FILE = "model.onnx"
TORCHSCRIPT_FILE = "model.pt"
FORMAT_FILES = {"onnx": ONNX_FILE, "torchscript": TORCHSCRIPT_FILE}


class OnnxModel(nn.Module):
    """An onnxruntime session (CPU) that maps an image batch to logits."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.path = str(path)
        self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = x.detach().to("cpu", torch.float32).contiguous().numpy()
        out = self.session.run(None, {self.input_name: array})[0]
        return torch.from_numpy(out).to(x.device)

    def __deepcopy__(self, memo: dict) -> OnnxModel:
        return self  # the session is stateless for inference; share it


def load_exported(folder: Path, fmt: str, device: str | torch.device = "cpu") -> nn.Module:
    if fmt == "onnx":
        return OnnxModel(folder / ONNX_FILE)
    # TorchScript archives hold code and tensors, not arbitrary pickled Python objects
    return torch.jit.load(str(folder / TORCHSCRIPT_FILE), map_location=device)
