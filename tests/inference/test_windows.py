"""Sliding windows: one window = a plain forward pass, no seams, any image size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seglab.config import ModelConfig
from seglab.inference.predict import Predictor, fold_batch_norms
from seglab.inference.settings import InferenceSettings
from seglab.inference.windows import gaussian_weights, sliding_window, window_starts
from seglab.losses import probabilities
from seglab.models.registry import create_model


def tiny_unet(num_classes: int = 1) -> nn.Module:
    torch.manual_seed(0)
    model = create_model(ModelConfig(depth=2, base_channels=4, num_classes=num_classes))
    for m in model.modules():  # non-trivial batch-norm statistics, so folding is exercised
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def pointwise(x: torch.Tensor) -> torch.Tensor:
    """A model without spatial context: any tiling must reproduce it exactly."""
    return torch.sigmoid(2.0 * x[:, :1] - 0.3)


@pytest.mark.parametrize(
    "length,window,step", [(100, 32, 16), (33, 32, 16), (32, 32, 16), (7, 32, 3)]
)
def test_window_starts_cover_the_side_and_stay_inside(length, window, step):
    starts = window_starts(length, window, step)
    covered = set()
    for s in starts:
        covered |= set(range(s, min(s + window, length)))
        assert s >= 0 and (s + window <= length or starts == [0])
    assert covered == set(range(length))


def test_one_window_is_the_plain_forward_pass():
    model = tiny_unet()
    x = torch.rand(2, 1, 32, 32)
    with torch.inference_mode():
        plain = probabilities(model((x - 0.4) / 0.2))
        direct = sliding_window(lambda w: probabilities(model(w)), (x - 0.4) / 0.2, window=32)
        settings = InferenceSettings(window=32, overlap=0.5, cpu_precision="32")
        predictor = Predictor(model, {"mean": [0.4], "std": [0.2]}, settings)
        via_predictor = predictor.probabilities(x)
    assert torch.equal(direct, plain)
    assert torch.allclose(via_predictor, plain, atol=1e-5)


def test_folding_batch_norms_keeps_the_output():
    model = tiny_unet()
    x = torch.randn(1, 1, 24, 24)
    folded = Predictor(model, {"mean": [0.0], "std": [1.0]}).model
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.inference_mode():
        assert torch.allclose(folded(x), model(x), atol=1e-5)
    fold_batch_norms(nn.Sequential(nn.Conv2d(1, 1, 1)))  # nothing to fold: no error


@pytest.mark.parametrize("blending", ["gaussian", "constant"])
@pytest.mark.parametrize("size", [(37, 53), (64, 64), (101, 29)])
def test_a_constant_model_gives_a_constant_after_blending(blending, size):
    x = torch.rand(2, 1, *size)

    def constant(w: torch.Tensor) -> torch.Tensor:
        return torch.full((w.shape[0], 3, *w.shape[2:]), 0.3)

    out = sliding_window(constant, x, window=16, overlap=0.5, blending=blending, batch_windows=3)
    assert out.shape == (2, 3, *size)
    assert torch.allclose(out, torch.full_like(out, 0.3), atol=1e-6)


@pytest.mark.parametrize("size", [(37, 53), (5, 7), (16, 40), (50, 9)])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.9])
def test_odd_and_small_sizes_reproduce_a_context_free_model(size, overlap):
    x = torch.randn(3, 2, *size)
    out = sliding_window(pointwise, x, window=16, overlap=overlap, batch_windows=5)
    assert out.shape == (3, 1, *size)
    assert torch.allclose(out, pointwise(x), atol=1e-6)


def test_a_real_model_on_a_large_odd_image_has_no_gaps():
    model = tiny_unet(num_classes=3)
    settings = InferenceSettings(window=24, overlap=0.5, batch_windows=4)
    predictor = Predictor(model, {"mean": [0.5], "std": [0.25]}, settings, num_classes=3)
    probs = predictor.probabilities(torch.rand(1, 45, 61))
    assert probs.shape == (1, 3, 45, 61)
    assert torch.isfinite(probs).all()
    assert torch.allclose(probs.sum(1), torch.ones(1, 45, 61), atol=1e-5)


def test_gaussian_weights_peak_in_the_middle_and_stay_positive():
    w = gaussian_weights((16, 20), 0.125, torch.device("cpu"))
    assert w.shape == (16, 20) and float(w.min()) > 0 and float(w.max()) == pytest.approx(1.0, 0.05)
    assert float(w[8, 10]) > float(w[0, 0])
    assert torch.allclose(w, w.flip(0)) and torch.allclose(w, w.flip(1))


@pytest.mark.slow  # importing MONAI alone takes seconds; it is a benchmark-only extra
def test_matches_monai_sliding_window_inference():
    monai_inferers = pytest.importorskip("monai.inferers")
    model = tiny_unet()
    x = torch.randn(2, 1, 70, 45)
    with torch.inference_mode():
        ours = sliding_window(
            lambda w: probabilities(model(w)), x, 32, 0.5, "gaussian", 0.125, batch_windows=4
        )
        theirs = monai_inferers.sliding_window_inference(
            x, (32, 32), 4, lambda w: probabilities(model(w)), overlap=0.5, mode="gaussian"
        )
    assert float((ours - theirs).abs().max()) <= 1e-5
