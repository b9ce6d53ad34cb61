"""eval.cpu_precision: bfloat16 forward passes on a CPU, float32 probabilities out."""

from __future__ import annotations

import pytest
import torch

from seglab.config import EvalConfig, ModelConfig
from seglab.errors import SeglabError
from seglab.inference import predict as predict_module
from seglab.inference.predict import Predictor
from seglab.inference.settings import InferenceSettings
from seglab.models.registry import create_model

NORM = {"mean": [0.5], "std": [0.25]}


def predictor(cpu_precision: str, half_precision: bool = True) -> Predictor:
    torch.manual_seed(0)
    model = create_model(ModelConfig(depth=2, base_channels=8))
    settings = InferenceSettings(
        window=None, cpu_precision=cpu_precision, half_precision=half_precision
    )
    return Predictor(model, NORM, settings, "cpu")


def test_bfloat16_passes_give_float32_probabilities_close_to_float32_passes():
    images = torch.rand(2, 1, 48, 64, generator=torch.Generator().manual_seed(1))
    exact, fast = predictor("32"), predictor("bf16-mixed")
    assert (exact.precision, fast.precision) == ("32", "bf16-mixed")
    assert fast.channels_last and not exact.channels_last
    p32, p16 = exact.probabilities(images), fast.probabilities(images)
    assert p16.dtype == torch.float32 and p16.shape == p32.shape == (2, 1, 48, 64)
    difference = (p16 - p32).abs()
    assert 0 < difference.max() < 0.05  # rounded to bfloat16 on the way, not recomputed in fp32
    assert difference.mean() < 0.01


@pytest.mark.parametrize("native", [True, False])
def test_auto_follows_what_the_cpu_computes_natively(monkeypatch, native):
    monkeypatch.setattr(predict_module, "cpu_has_bf16", lambda: native)
    assert predictor("auto").precision == ("bf16-mixed" if native else "32")
    assert predictor("32").precision == "32"  # an explicit float32 stays float32


def test_a_predictor_reads_the_config_spellings_and_refuses_others():
    assert predictor("bf16").precision == "bf16-mixed"
    with pytest.raises(ValueError, match="'16'"):
        predictor("16")  # not float32 in silence


def test_half_precision_means_the_gpu_only():
    assert predictor("32", half_precision=True).precision == "32"


def test_the_setting_travels_in_model_json_and_bad_values_name_the_key():
    settings = InferenceSettings(cpu_precision="auto")
    meta = {"threshold": 0.5, "inference": settings.to_json()}
    assert InferenceSettings.from_meta(meta).cpu_precision == "auto"
    with pytest.raises(SeglabError, match="eval.cpu_precision"):
        InferenceSettings.from_meta({"threshold": 0.5, "inference": {"cpu_precision": "16"}})


def test_spellings_of_train_precision_are_accepted():
    assert EvalConfig(cpu_precision=32).cpu_precision == "32"  # YAML's 32, or --set ...=32
    assert EvalConfig(cpu_precision="bf16").cpu_precision == "bf16-mixed"
    with pytest.raises(ValueError, match="cpu_precision"):
        EvalConfig(cpu_precision=16)  # float16 is for GPUs (eval.half_precision)
