"""Export a model to ONNX or TorchScript with dynamic batch, height and width, checked.

ONNX uses torch's TorchScript-based exporter (``dynamo=False``: no onnxscript
needed); TorchScript uses ``torch.jit.trace``. Either export is run on an input
of another size than the example it was traced with and compared with the
PyTorch model, so a size baked into the graph is caught at export time.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seglab.errors import SeglabError

INPUT, OUTPUT = "image", "logits"
_DYNAMIC = {0: "batch", 2: "height", 3: "width"}


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy-exporter and tracer notices
        torch.onnx.export(
            model.eval(),
            (example,),
            str(path),
            dynamo=False,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: _DYNAMIC, OUTPUT: _DYNAMIC},
            opset_version=17,
        )
    return path


def export_torchscript(model: nn.Module, example: torch.Tensor, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model.eval(), example)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    traced.save(str(tmp))
    os.replace(tmp, path)
    return path


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(session, x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(session.run(None, {INPUT: x.detach().cpu().numpy()})[0])


def check_export(
    reference: nn.Module,
    exported,
    shape: tuple[int, int, int, int],
    atol: float = 1e-4,
) -> float:
    """Max |exported(x) - reference(x)| on a random input of ``shape``; SeglabError if > atol."""
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        want = reference.eval()(x)
        got = exported(x)
    diff = float(np.abs(got.numpy() - want.numpy()).max()) if got.shape == want.shape else np.inf
    if not diff <= atol:
        raise SeglabError(
            f"the exported model differs from PyTorch on a {shape[2]}x{shape[3]} input "
            f"(max abs difference {diff:.3g} > {atol:g})",
            hint="the model may bake a size into the graph; try the other --format",
        )
    return diff
