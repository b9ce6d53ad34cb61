"""Post-training int8 quantisation for CPU deployment.

- PyTorch dynamic int8 (``torch.ao.quantization.quantize_dynamic``): Linear layers
  only, so it changes transformer encoders and leaves convolutional U-Nets alone;
  :func:`torch_dynamic_int8` says how many layers it quantised.
- onnxruntime dynamic int8 (weights int8, activations quantised on the fly) and
  static int8 (QDQ, activations calibrated on images of the run's validation
  split) of an exported ONNX model.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seglab.compress.export import INPUT


def torch_dynamic_int8(model: nn.Module) -> tuple[nn.Module, int]:
    """The model with its Linear layers in dynamic int8, and how many there were."""
    linears = sum(1 for m in model.modules() if type(m) is nn.Linear)
    if linears == 0:
        return model, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization deprecation notice
        quantized = torch.ao.quantization.quantize_dynamic(
            model.eval(), {nn.Linear}, dtype=torch.qint8
        )
    return quantized, linears


def onnx_dynamic_int8(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    return Path(target)


def onnx_static_int8(
    source: str | os.PathLike, target: str | os.PathLike, calibration: Iterable[np.ndarray]
) -> Path:
    """QDQ int8 with activation ranges from ``calibration`` (N x C x H x W float32 batches)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, batches: Iterable[np.ndarray]) -> None:
            self.batches = iter([{INPUT: b.astype(np.float32)} for b in batches])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    target = Path(target)
    prepared = target.with_name(f".{target.stem}.pre.onnx")
    try:
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(target),
            Reader(calibration),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
    finally:
        prepared.unlink(missing_ok=True)
    return target
