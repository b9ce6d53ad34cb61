"""Model registry: ``@register_model("name")`` and ``create_model(cfg)``."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable

from torch import nn

from seglab.config import ModelConfig
from seglab.errors import SeglabError

log = logging.getLogger("seglab")
ModelFactory = Callable[[ModelConfig], nn.Module]
_MODELS: dict[str, ModelFactory] = {}
_READS: dict[str, frozenset[str]] = {}

# ModelConfig options that only some families read (name, channels, classes,
# grad_checkpointing and the front-end every model honours)
FAMILY_OPTIONS = (
    "depth",
    "base_channels",
    "widths",
    "norm",
    "dropout",
    "se",
    "attention",
    "residual",
    "encoder",
    "pretrained",
    "img_size",
    "embed_dim",
    "window_size",
    "depths",
    "aspp_rates",
    "deep_supervision",
    "space_to_depth",
    "head_kernel",
)


def register_model(
    name: str, reads: Iterable[str] | None = None
) -> Callable[[ModelFactory], ModelFactory]:
    """Register a factory that builds a model from a :class:`ModelConfig`.

    ``reads`` names the :data:`FAMILY_OPTIONS` the factory uses; :func:`create_model`
    warns when a config sets one of the others away from its default. None: no check.
    """
    known = None if reads is None else frozenset(reads)
    if known is not None and not known <= set(FAMILY_OPTIONS):
        raise ValueError(
            f"model {name!r} reads unknown options {sorted(known - set(FAMILY_OPTIONS))}"
        )

    def decorator(factory: ModelFactory) -> ModelFactory:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = factory
        if known is not None:
            _READS[name] = known
        return factory

    return decorator


def ignored_options(cfg: ModelConfig) -> list[str]:
    """The options ``cfg`` sets away from their defaults that its model does not read."""
    _load_families()
    reads = _READS.get(cfg.name)
    defaults = ModelConfig()
    ignored = []
    if reads is not None:
        ignored = [
            k for k in FAMILY_OPTIONS if k not in reads and getattr(cfg, k) != getattr(defaults, k)
        ]
    for key, used in (
        ("frontend_channels", cfg.frontend is not None),
        ("sinc_filters", cfg.frontend == "sinc_spectral"),
    ):
        if not used and getattr(cfg, key) != getattr(defaults, key):
            ignored.append(key)
    return ignored


def available_models() -> list[str]:
    _load_families()
    return sorted(_MODELS)


def create_model(cfg: ModelConfig, warn_ignored: bool = True) -> nn.Module:
    """Build the model named by ``cfg.name``; an unknown name is a user error.

    With ``cfg.frontend`` set, the named model is built for the front-end's output
    channels and wrapped after it (see :mod:`seglab.models.spectral`). Options set in
    ``cfg`` that this model does not read are logged as a warning (not an error: one
    config may be swept over several families).
    """
    _load_families()
    factory = _MODELS.get(cfg.name)
    if factory is None:
        close = difflib.get_close_matches(cfg.name, _MODELS, n=1)
        hint = f"did you mean {close[0]}?" if close else "run `seglab models` for the list"
        raise SeglabError(f"unknown model.name {cfg.name!r}", hint=hint)
    for key in ignored_options(cfg) if warn_ignored else []:
        readers = sorted(n for n, reads in _READS.items() if key in reads)
        log.warning(
            "model.%s is set but %s does not read it%s",
            key,
            cfg.name,
            f" (read by {', '.join(readers)})" if readers else "",
        )
    if cfg.frontend is None:
        return factory(cfg)
    from seglab.models.spectral import WithFrontend, create_frontend

    frontend = create_frontend(cfg)
    body = factory(cfg.model_copy(update={"in_channels": frontend.out_channels, "frontend": None}))
    return WithFrontend(frontend, body)


def _load_families() -> None:
    """Import the model families so their ``@register_model`` decorators run."""
    from seglab.models import (  # noqa: F401
        deeplab,
        hybrid,
        swin_unet,
        timm_unet,
        unet,
    )
