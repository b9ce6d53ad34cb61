"""Inference settings: how a model is applied (windows, TTA, threshold, post-processing).

They come from the ``eval`` section of a config when a run is trained or evaluated,
and are stored in ``model/model.json`` under ``inference`` so that ``seglab predict``
needs nothing but the model folder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from seglab.config import EvalConfig


@dataclass(frozen=True)
class InferenceSettings:
    window: int | None = 256
    overlap: float = 0.5
    blending: str = "gaussian"
    sigma_scale: float = 0.125
    batch_windows: int = 4
    tta: str = "none"
    half_precision: bool = True
    cpu_precision: str = "auto"
    threshold: float = 0.5
    min_object_size: int = 0
    fill_holes: bool = False
    opening: int = 0

    @classmethod
    def from_eval(cls, cfg: EvalConfig, threshold: float | None = None) -> InferenceSettings:
        values = {f.name: getattr(cfg, f.name) for f in fields(cls) if hasattr(cfg, f.name)}
        if threshold is not None:
            values["threshold"] = threshold
        return cls(**values)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> InferenceSettings:
        """Settings of a model folder's ``model.json``; missing keys take the defaults.

        The values are validated through :class:`EvalConfig`, so a hand-edited
        ``model.json`` with an impossible value fails with a message naming the key.
        """
        stored = meta.get("inference") if isinstance(meta.get("inference"), dict) else {}
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in stored.items() if k in known and k != "threshold"}
        if "threshold" in meta:
            values["threshold"] = meta["threshold"]
        from seglab.config import validate_config

        cfg = validate_config({"eval": values}, "model.json inference settings")
        return cls.from_eval(cfg.eval)

    def with_(self, **changes: Any) -> InferenceSettings:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The settings stored in model.json (the threshold is stored beside them)."""
        values = asdict(self)
        values.pop("threshold")
        return values

    def postprocessing(self) -> dict[str, Any]:
        return {
            "min_object_size": self.min_object_size,
            "fill_holes": self.fill_holes,
            "opening": self.opening,
        }
