"""Inference settings: config names match the registries; model.json round trip."""

from __future__ import annotations

import typing

import pytest

from seglab.config import EvalConfig
from seglab.errors import SeglabError
from seglab.inference.settings import InferenceSettings
from seglab.inference.tta import TTA_SETS
from seglab.inference.windows import available_blendings


def test_config_choices_are_the_registered_names():
    hints = typing.get_type_hints(EvalConfig)
    assert set(typing.get_args(hints["tta"])) == set(TTA_SETS)
    assert set(typing.get_args(hints["blending"])) == set(available_blendings())


def test_model_json_round_trip_and_defaults():
    settings = InferenceSettings(window=64, tta="flips", fill_holes=True, threshold=0.37)
    meta = {"threshold": 0.37, "inference": settings.to_json()}
    assert InferenceSettings.from_meta(meta) == settings
    assert InferenceSettings.from_meta({"threshold": 0.5}) == InferenceSettings()  # older folders
    assert InferenceSettings.from_eval(EvalConfig()) == InferenceSettings()


def test_an_impossible_stored_value_names_the_key():
    with pytest.raises(SeglabError, match="eval.overlap"):
        InferenceSettings.from_meta({"threshold": 0.5, "inference": {"overlap": 2}})
