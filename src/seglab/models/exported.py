"""Exported models (ONNX, TorchScript) behind the ``nn.Module`` interface, for prediction.

A model folder written by ``seglab export`` holds ``model.onnx`` or ``model.pt``
(TorchScript) and ``model.json`` with ``"format"`` naming which; load_model_folder
returns one of these so ``seglab predict`` and the evaluation code use it as any model.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from seglab.errors import SeglabError
from seglab.models.blocks import pad_to_multiple

ONNX_FILE = "model.onnx"
TORCHSCRIPT_FILE = "model.pt"
FORMAT_FILES = {"onnx": ONNX_FILE, "torchscript": TORCHSCRIPT_FILE}


def onnx_available() -> bool:
    """Whether the ``onnx`` extra (onnx, onnxruntime) is installed."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


def require_onnx(what: str) -> None:
    if not onnx_available():
        raise SeglabError(
            f"{what} needs onnx and onnxruntime, which are not installed",
            hint="pip install 'seglab[onnx]'",
        )


class OnnxModel(nn.Module):
    """An onnxruntime session (CPU) that maps an image batch to logits."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__()
        require_onnx(f"running {path}")
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


class PaddedExport(nn.Module):
    """Pads inputs to the multiple the model was traced for, and crops the output back.

    A traced graph keeps the branch its example took: a model that pads inputs to
    a multiple of its stride was traced on a multiple, so the padding happens here.
    """

    def __init__(self, inner: nn.Module, multiple: int = 1) -> None:
        super().__init__()
        self.inner, self.multiple = inner, multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        padded = pad_to_multiple(x, self.multiple) if self.multiple > 1 else x
        return self.inner(padded)[..., :height, :width]

    def __deepcopy__(self, memo: dict) -> PaddedExport:
        return self  # an exported graph is only run, never changed: no copy needed


def input_multiple(model: nn.Module) -> int:
    """The multiple a model pads its inputs to (``multiple`` of the model or its encoder)."""
    for module in model.modules():
        value = getattr(module, "multiple", None)
        if isinstance(value, int) and value > 1:
            return value
    return 1


def load_exported(
    folder: Path, fmt: str, device: str | torch.device = "cpu", multiple: int = 1
) -> nn.Module:
    if fmt == "onnx":
        inner: nn.Module = OnnxModel(folder / ONNX_FILE)
    else:  # TorchScript archives hold code and tensors, not arbitrary pickled Python objects
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still works
            inner = torch.jit.load(str(folder / TORCHSCRIPT_FILE), map_location=device)
    return PaddedExport(inner, multiple)
