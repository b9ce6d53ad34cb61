"""Model registry: ``@register_model("name")`` and ``create_model(cfg)``."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from torch import nn

from seglab.config import ModelConfig
from seglab.errors import SeglabError

ModelFactory = Callable[[ModelConfig], nn.Module]
_MODELS: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Register a factory that builds a model from a :class:`ModelConfig`."""

    def decorator(factory: ModelFactory) -> ModelFactory:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = factory
        return factory

    return decorator


def available_models() -> list[str]:
    _load_families()
    return sorted(_MODELS)


def create_model(cfg: ModelConfig) -> nn.Module:
    """Build the model named by ``cfg.name``; an unknown name is a user error.

    With ``cfg.frontend`` set, the named model is built for the front-end's output
    channels and wrapped after it (see :mod:`seglab.models.spectral`).
    """
    _load_families()
    factory = _MODELS.get(cfg.name)
    if factory is None:
        close = difflib.get_close_matches(cfg.name, _MODELS, n=1)
        hint = f"did you mean {close[0]}?" if close else "run `seglab models` for the list"
        raise SeglabError(f"unknown model.name {cfg.name!r}", hint=hint)
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
