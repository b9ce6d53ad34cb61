"""timm encoders behind one interface, and pretrained weights that fail fast offline.

``TimmEncoder(name, ...)`` wraps ``timm.create_model(name, features_only=True)``: it
returns NCHW feature maps shallow to deep and knows their channels and strides,
the side multiple its input needs and, for encoders whose attention is sized for
one image size (CoAtNet, MaxViT), that fixed size.

Pretrained weights come from the Hugging Face cache first (no network); only when
they are not cached and the hub answers an HTTP request within a few seconds is a download
tried. Offline, the user gets a :class:`SeglabError` in seconds instead of
minutes of retries.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from typing import Any

import timm
import torch
from torch import nn

from seglab.errors import SeglabError
from seglab.models.blocks import pad_to_multiple, pad_to_size

# encoders whose transformer stages are built for one input size (relative position tables)
FIXED_SIZE_PREFIXES = ("coatnet", "coatnext", "maxvit", "maxxvit")
HUB_PROBE_TIMEOUT_S = 3.0


class TimmEncoder(nn.Module):
    def __init__(
        self,
        name: str,
        in_channels: int,
        pretrained: bool = False,
        img_size: int = 256,
        grad_checkpointing: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.name = name
        self.fixed_size = img_size if name.startswith(FIXED_SIZE_PREFIXES) else None
        if self.fixed_size is not None:
            kwargs["img_size"] = img_size
        if name.startswith("swin"):
            kwargs.setdefault("strict_img_size", False)
        try:
            self.model = create_timm_model(
                name, pretrained=pretrained, features_only=True, in_chans=in_channels, **kwargs
            )
        except TypeError as exc:  # an option this encoder does not have
            raise SeglabError(
                f"timm encoder {name!r} does not accept {sorted(kwargs)}: {exc}",
                hint="pick an encoder of the family this model expects (see README, Models)",
            ) from None
        info = self.model.feature_info
        self.channels: list[int] = list(info.channels())
        self.reductions: list[int] = list(info.reduction())
        self.nhwc = "NHWC" in str(getattr(self.model, "output_fmt", "NCHW"))
        self.multiple = max(self.reductions)
        if grad_checkpointing:
            try:
                self.model.set_grad_checkpointing(True)
            except (AttributeError, NotImplementedError, AssertionError) as exc:
                raise SeglabError(
                    f"model.grad_checkpointing is not supported by the timm encoder {name!r}",
                    hint="set model.grad_checkpointing=false",
                ) from exc

    def pad_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` padded to what the encoder takes: its fixed size, or a multiple of its stride."""
        if self.fixed_size is None:
            return pad_to_multiple(x, self.multiple)
        self.check_size(*x.shape[-2:])
        return pad_to_size(x, self.fixed_size, self.fixed_size)

    def check_size(self, height: int, width: int) -> None:
        if self.fixed_size is not None and max(height, width) > self.fixed_size:
            raise SeglabError(
                f"input {height}x{width} is larger than model.img_size={self.fixed_size}, "
                f"the fixed size of the {self.name} encoder",
                hint="raise model.img_size or use smaller patches / tiles",
            )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.model(x)
        if self.nhwc:
            features = [f.permute(0, 3, 1, 2).contiguous() for f in features]
        return list(features)


def create_timm_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """``timm.create_model`` with user errors for unknown names and unreachable weights."""
    if not timm.is_model(name.split(".")[0]):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:5]
        raise SeglabError(
            f"unknown timm encoder model.encoder={name!r}",
            hint=f"close names: {', '.join(close)}" if close else "see timm.list_models()",
        )
    if not pretrained:
        return timm.create_model(name, pretrained=False, **kwargs)
    try:
        return _create_from_cache(name, **kwargs)
    except (OSError, RuntimeError, ValueError) as cache_error:
        if not _hub_reachable():
            raise SeglabError(
                f"pretrained weights for {name!r} are not in the Hugging Face cache and the hub "
                f"is unreachable ({type(cache_error).__name__})",
                hint="set model.pretrained=false, or download the weights once on a machine "
                "with internet and copy the cache (HF_HOME)",
            ) from None
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except (OSError, RuntimeError, ValueError) as exc:
        raise SeglabError(
            f"could not load pretrained weights for {name!r}: {str(exc).splitlines()[0][:200]}",
            hint="set model.pretrained=false, or check that the encoder settings match the "
            "pretrained model (embed_dim, depths, window_size)",
        ) from None


def _create_from_cache(name: str, **kwargs: Any) -> nn.Module:
    """Build with pretrained weights, reading the hub cache only (no network)."""
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    finally:
        constants.HF_HUB_OFFLINE = before


def _hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether the Hugging Face endpoint answers an HTTP request within ``timeout`` seconds."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    result: list[bool] = []

    def probe() -> None:  # DNS and TLS have no overall timeout of their own: use a thread
        request = urllib.request.Request(constants.ENDPOINT, method="HEAD")
        try:
            urllib.request.urlopen(request, timeout=timeout).close()  # noqa: S310
            result.append(True)
        except urllib.error.HTTPError:  # an answer, even an error status, means reachable
            result.append(True)
        except (OSError, ValueError):
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])
