"""Load, split and normalise the data of a config."""

from __future__ import annotations

from dataclasses import dataclass

from seglab.config import Config
from seglab.data.normalize import fit_normalization
from seglab.data.readers import load_samples
from seglab.data.samples import Sample
from seglab.data.split import SPLITS, make_split
from seglab.errors import SeglabError


@dataclass
class PreparedData:
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    split: dict[str, list[str]]
    normalization: dict

    def part(self, name: str) -> list[Sample]:
        return getattr(self, name)


def prepare_data(cfg: Config, split: dict[str, list[str]] | None = None) -> PreparedData:
    """Samples of every split; ``split`` (e.g. a run's split.json) overrides the configured one.

    The normalisation statistics come from the training split only.
    """
    samples = load_samples(cfg.data)
    by_name = {s.name: s for s in samples}
    channels = {s.channels for s in samples}
    if channels != {cfg.model.in_channels}:
        raise SeglabError(
            f"images have {sorted(channels)} channel(s) but model.in_channels is "
            f"{cfg.model.in_channels}",
            hint="set model.in_channels to match the images (cubes: the band count)",
        )
    if split is None:
        split = make_split(samples, cfg.data.split, cfg.seed)
    missing = [n for part in SPLITS for n in split.get(part, []) if n not in by_name]
    if missing:
        raise SeglabError(f"split names {missing[:3]} are not in the data", hint="check data.root")
    parts = {part: [by_name[n] for n in split.get(part, [])] for part in SPLITS}
    if not parts["train"]:
        raise SeglabError("the train split is empty", hint="check data.split")
    normalization = fit_normalization(parts["train"], cfg.data.normalize)
    return PreparedData(**parts, split=split, normalization=normalization)
