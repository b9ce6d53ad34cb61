"""ONNX and TorchScript exports: dynamic height and width, checked against PyTorch."""

from __future__ import annotations

import pytest
import torch

from seglab.compress.export import check_export, export_onnx, export_torchscript
from seglab.compress.quantize import torch_dynamic_int8
from seglab.config import ModelConfig
from seglab.errors import SeglabError
from seglab.models.exported import input_multiple, load_exported
from seglab.models.registry import create_model


@pytest.fixture(scope="module")
def unet() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(ModelConfig(depth=2, base_channels=4)).eval()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_pytorch_at_another_size(unet, tmp_path, fmt):
    example = torch.randn(1, 1, 64, 64)
    if fmt == "onnx":
        export_onnx(unet, example, tmp_path / "model.onnx")
    else:
        export_torchscript(unet, example, tmp_path / "model.pt")
    exported = load_exported(tmp_path, fmt, multiple=input_multiple(unet))
    for shape in [(1, 1, 64, 64), (2, 1, 37, 90)]:  # 37 x 90: not a multiple of the stride
        assert check_export(unet, exported, shape) <= 1e-4


@pytest.mark.parametrize("head_kernel", [1, 3])
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_folded_unet_exports_with_its_larger_input_multiple(tmp_path, fmt, head_kernel):
    # model.space_to_depth: pixel_unshuffle / pixel_shuffle in the graph, inputs padded to
    # a multiple of fold * 2**depth outside it (with the 1x1 or the 3x3 output convolution)
    torch.manual_seed(0)
    cfg = ModelConfig(
        name="res_unet", depth=2, base_channels=4, space_to_depth=2, head_kernel=head_kernel
    )
    model = create_model(cfg).eval()
    example = torch.randn(1, 1, 64, 64)
    if fmt == "onnx":
        export_onnx(model, example, tmp_path / "model.onnx")
    else:
        export_torchscript(model, example, tmp_path / "model.pt")
    assert input_multiple(model) == 8
    exported = load_exported(tmp_path, fmt, multiple=input_multiple(model))
    for shape in [(1, 1, 64, 64), (2, 1, 37, 90)]:
        assert check_export(model, exported, shape) <= 1e-4


def test_a_mismatching_export_is_an_error(unet, tmp_path):
    export_onnx(unet, torch.randn(1, 1, 64, 64), tmp_path / "model.onnx")
    torch.manual_seed(1)
    other = create_model(ModelConfig(depth=2, base_channels=4)).eval()
    with pytest.raises(SeglabError, match="differs from PyTorch"):
        check_export(other, load_exported(tmp_path, "onnx", multiple=4), (1, 1, 48, 48))


def test_dynamic_int8_quantises_linear_layers_only(unet):
    same, count = torch_dynamic_int8(unet)
    assert count == 0 and same is unet  # a convolutional U-Net has nothing to quantise
    mlp = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    quantized, count = torch_dynamic_int8(mlp)
    x = torch.randn(8, 16)
    assert count == 2 and type(quantized[0]) is not torch.nn.Linear
    assert (quantized(x) - mlp(x)).abs().max() < 0.05
