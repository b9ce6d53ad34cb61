"""The experiment config: pydantic models for every section.

YAML in, validated :class:`Config` out. ``--set a.b=value`` overrides are parsed
with YAML typing. Unknown keys are rejected with a close-match suggestion and
every value is range-checked; all such problems surface as one-line
:class:`~seglab.errors.SeglabError` messages that name the key.

The built-in default experiment is ``Config()`` itself; ``configs/default.yaml``
spells it out with comments (a test keeps the two equal).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from seglab.errors import SeglabError


class Section(BaseModel):
    """Base for all sections: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- data


class SyntheticConfig(Section):
    kind: Literal["em", "crack"] = "em"
    n_images: int = Field(40, ge=3, le=100_000)
    height: int = Field(192, ge=16, le=8192)
    width: int = Field(192, ge=16, le=8192)
    seed: int = Field(0, ge=0, le=2**32 - 1)


class SplitConfig(Section):
    train: float = Field(0.7, gt=0.0, lt=1.0)
    val: float = Field(0.15, gt=0.0, lt=1.0)
    test: float = Field(0.15, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1, got {total:g}")
        return self


class DataConfig(Section):
    source: Literal["synthetic", "folder"] = "synthetic"
    root: str | None = None
    images_dir: str = "images"
    masks_dir: str = "masks"
    mask_threshold: int = Field(127, ge=0, le=65535)
    ignore_index: int = Field(255, ge=0, le=65535)
    synthetic: SyntheticConfig = SyntheticConfig()
    split: SplitConfig = SplitConfig()
    patch_size: int = Field(96, ge=16, le=4096)
    patches_per_epoch: int = Field(240, ge=1, le=10_000_000)
    augment: bool = True

    @model_validator(mode="after")
    def _root_for_folders(self) -> DataConfig:
        if self.source == "folder" and not self.root:
            raise ValueError("data.source 'folder' needs data.root (the folder with images/)")
        return self


# --------------------------------------------------------------------------- model


class ModelConfig(Section):
    name: str = "unet"
    in_channels: int = Field(1, ge=1, le=4096)
    num_classes: int = Field(1, ge=1, le=1000)
    depth: int = Field(4, ge=1, le=7)
    base_channels: int = Field(16, ge=2, le=1024)
    norm: Literal["batch", "instance", "group", "none"] = "batch"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


# --------------------------------------------------------------------------- training


class LossConfig(Section):
    name: str = "bce_dice"
    smooth: float = Field(1.0, ge=0.0, le=1e4)


class OptimConfig(Section):
    name: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = Field(3e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)


class ScheduleConfig(Section):
    name: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: int = Field(0, ge=0, le=100_000)
    min_lr: float = Field(1e-5, ge=0.0, le=10.0)


class TrainConfig(Section):
    epochs: int = Field(12, ge=1, le=1_000_000)
    batch_size: int = Field(8, ge=1, le=65_536)
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: int = Field(1, ge=1, le=1024)
    precision: Literal["32", "16-mixed", "bf16-mixed"] = "32"
    num_workers: int = Field(0, ge=0, le=256)
    grad_clip: float | None = Field(None, gt=0.0)
    progress: bool = True


class EvalConfig(Section):
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    n_overlays: int = Field(6, ge=0, le=256)
    window: int | None = Field(256, ge=8, le=65_536)
    overlap: float = Field(0.5, ge=0.0, le=0.95)
    blending: Literal["gaussian", "constant"] = "gaussian"
    sigma_scale: float = Field(0.125, gt=0.0, le=10.0)
    batch_windows: int = Field(4, ge=1, le=65_536)
    tta: Literal["none", "flips", "dihedral"] = "none"
    half_precision: bool = True
    tune_threshold: bool = True
    min_object_size: int = Field(0, ge=0, le=2**31 - 1)
    fill_holes: bool = False
    opening: int = Field(0, ge=0, le=256)
    bootstrap_samples: int = Field(1000, ge=0, le=1_000_000)


class Config(Section):
    name: str = Field("default", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = Field(0, ge=0, le=2**32 - 1)
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# --------------------------------------------------------------------------- loading


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML mapping from ``path`` (safe_load), or a SeglabError that names the file."""
    path = Path(path)
    if not path.is_file():
        raise SeglabError(f"config file not found: {path}", hint="check the path")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise SeglabError(f"{path}: malformed YAML{at}: {problem}", hint="fix the file") from None
    except UnicodeDecodeError:
        raise SeglabError(f"{path}: not a text file", hint="pass a YAML config") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SeglabError(
            f"{path}: the top level must be a mapping of sections, got {type(raw).__name__}",
            hint="see configs/default.yaml",
        )
    return raw


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Apply one ``a.b.c=value`` override to ``raw`` in place; the value is parsed as YAML."""
    key, sep, text = override.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise SeglabError(
            f"bad override {override!r}", hint="write --set section.key=value, e.g. train.epochs=5"
        )
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    node = raw
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            prefix = ".".join(parts[: i + 1])
            raise SeglabError(f"bad override {override!r}: {prefix} is not a section")
        node = child
    node[parts[-1]] = value


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the section at ``loc`` (the parent of an offending key)."""
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _explain(error: dict[str, Any], source: str) -> str:
    loc = tuple(error.get("loc", ()))
    dotted = ".".join(str(p) for p in loc) or "(top level)"
    if error.get("type") == "extra_forbidden":
        known = _known_keys(Config, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        prefix = ".".join(str(p) for p in loc[:-1])
        hint = (
            f"did you mean {prefix + '.' if prefix else ''}{close[0]}?"
            if close
            else f"known keys here: {', '.join(known)}"
        )
        return f"{source}: unknown key {dotted}; {hint}"
    msg = str(error.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ")
    if error.get("type") == "model_attribute_type" or error.get("type") == "model_type":
        return f"{source}: {dotted} must be a section (a mapping of keys), not a value"
    value = error.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    return f"{source}: {dotted}: {msg}{shown}"


def validate_config(raw: dict[str, Any], source: str = "config") -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise SeglabError(_explain(exc.errors()[0], source)) from None


def load_config(
    path: str | os.PathLike | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> Config:
    """Read, override and validate a config; ``path=None`` means the built-in default."""
    raw = read_yaml(path) if path is not None else {}
    for override in overrides:
        apply_override(raw, override)
    source = str(path) if path is not None else "built-in default"
    if overrides:
        source += " with --set"
    cfg = validate_config(raw, source)
    if cfg.data.root is not None:
        cfg.data.root = str(Path(cfg.data.root).expanduser().resolve())
    return cfg
