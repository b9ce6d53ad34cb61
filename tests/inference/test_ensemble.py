"""Ensembles: a model with itself is the model; class counts must agree."""

from __future__ import annotations

import pytest
import torch

from seglab.config import ModelConfig
from seglab.data.samples import Sample
from seglab.errors import SeglabError
from seglab.inference.ensemble import Ensemble
from seglab.inference.evaluate import evaluate_samples
from seglab.inference.predict import Predictor
from seglab.inference.settings import InferenceSettings
from seglab.models.registry import create_model

NORM = {"mean": [0.5], "std": [0.25]}


def predictor(seed: int, num_classes: int = 1, depth: int = 2) -> Predictor:
    torch.manual_seed(seed)
    model = create_model(ModelConfig(depth=depth, base_channels=4, num_classes=num_classes))
    return Predictor(model, NORM, InferenceSettings(window=24), num_classes=num_classes)


def samples() -> list[Sample]:
    rng = torch.Generator().manual_seed(0)
    return [
        Sample(
            f"s{i}",
            torch.rand(1, 30, 40, generator=rng).numpy(),
            (torch.rand(30, 40, generator=rng) > 0.5).long().numpy(),
        )
        for i in range(3)
    ]


def test_an_ensemble_of_a_model_with_itself_equals_the_model():
    single = predictor(0)
    pair = Ensemble([single, single])
    x = torch.rand(2, 1, 37, 41)
    assert torch.allclose(pair.probabilities(x), single.probabilities(x), atol=1e-7)
    a = evaluate_samples(single, samples(), threshold=0.5, bootstrap_samples=50)
    b = evaluate_samples(pair, samples(), threshold=0.5, bootstrap_samples=50)
    assert a.metrics == b.metrics and a.per_image == b.per_image


def test_different_architectures_average_and_class_counts_must_match():
    a, b = predictor(0, depth=2), predictor(1, depth=3)
    x = torch.rand(1, 1, 30, 30)
    mean = (a.probabilities(x) + b.probabilities(x)) / 2
    assert torch.allclose(Ensemble([a, b]).probabilities(x), mean, atol=1e-6)
    with pytest.raises(SeglabError, match="different numbers of classes"):
        Ensemble([a, predictor(0, num_classes=3)], ["a", "b"])


def test_multi_class_evaluation_has_a_confusion_matrix():
    p = predictor(0, num_classes=3)
    result = evaluate_samples(p, samples(), num_classes=3, bootstrap_samples=20)
    matrix = result.metrics["confusion_matrix"]["counts"]
    assert len(matrix) == 3 and sum(map(sum, matrix)) == 3 * 30 * 40
    assert "ci95" in result.metrics
