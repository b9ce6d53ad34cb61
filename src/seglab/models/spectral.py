"""Hyperspectral front-ends: turn tens to hundreds of bands into a few feature channels.

Any registered model can sit behind one (``model.frontend``): the model is built
for ``model.frontend_channels`` input channels and wrapped as
``WithFrontend(frontend, body)``.

- ``spectral_compressor``: 1x1 convolutions, bands -> channels, with normalisation.
- ``sinc_spectral``: learnable band-pass sinc filters along the spectral axis (the
  SSMU-Net idea, after SincNet): each filter is defined by two learnable cut-off
  frequencies; the filtered spectrum is averaged into a few spectral bins and
  mixed into channels by a 1x1 convolution.
- ``spectral_attention_net``: band attention (squeeze-excitation over the bands),
  compression and residual blocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from seglab.config import ModelConfig
from seglab.models.blocks import SqueezeExcite, norm_layer

FrontendFactory = Callable[[ModelConfig], nn.Module]
_FRONTENDS: dict[str, FrontendFactory] = {}


def register_frontend(name: str) -> Callable[[FrontendFactory], FrontendFactory]:
    def decorator(factory: FrontendFactory) -> FrontendFactory:
        _FRONTENDS[name] = factory
        return factory

    return decorator


def create_frontend(cfg: ModelConfig) -> nn.Module:
    """The front-end named by ``cfg.frontend``; it has an ``out_channels`` attribute."""
    return _FRONTENDS[str(cfg.frontend)](cfg)


class WithFrontend(nn.Module):
    """A front-end followed by a segmentation model; ``aux_outputs`` come from the model."""

    def __init__(self, frontend: nn.Module, body: nn.Module) -> None:
        super().__init__()
        self.frontend = frontend
        self.body = body

    @property
    def aux_outputs(self) -> list[torch.Tensor]:
        return getattr(self.body, "aux_outputs", [])

    @property
    def aux_extent(self) -> tuple[int, int] | None:
        return getattr(self.body, "aux_extent", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.frontend(x))


def _conv_norm_act(in_ch: int, out_ch: int, norm: str, kernel: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=norm == "none"),
        norm_layer(norm, out_ch),
        nn.ReLU(inplace=True),
    ]


class SpectralCompressor(nn.Sequential):
    """Two 1x1 convolutions with normalisation: bands -> ``out_channels``."""

    def __init__(self, bands: int, out_channels: int, norm: str = "batch") -> None:
        hidden = max(out_channels, min(bands, 2 * out_channels))
        super().__init__(
            *_conv_norm_act(bands, hidden, norm), *_conv_norm_act(hidden, out_channels, norm)
        )
        self.out_channels = out_channels


class SincSpectral(nn.Module):
    """Learnable band-pass sinc filters applied along the spectral axis of every pixel.

    Filter ``k`` passes normalised frequencies between ``low_k`` and ``low_k + band_k``
    (cycles per band, < 0.5); both are learned. Filtering the spectrum with all
    filters and averaging the result into ``bins`` spectral bins is linear in the
    bands, so it is applied as one 1x1 convolution whose weight is rebuilt from the
    cut-offs on every call (cheap; no per-pixel 1-D convolution, no large buffers).
    A normalised 1x1 convolution then mixes the ``filters x bins`` responses into
    ``out_channels``.
    """

    def __init__(
        self, bands: int, filters: int, out_channels: int, norm: str = "batch", bins: int = 8
    ) -> None:
        super().__init__()
        self.bands, self.filters, self.bins = bands, filters, min(bins, bands)
        self.kernel_size = min(2 * (bands // 4) + 1, 31)  # odd, short relative to the spectrum
        edges = torch.linspace(0.01, 0.45, filters + 1)
        self.low = nn.Parameter(edges[:-1].clone())
        self.band = nn.Parameter((edges[1:] - edges[:-1]).clone())
        half = self.kernel_size // 2
        taps = torch.arange(-half, half + 1, dtype=torch.float32)
        self.register_buffer("taps", taps, persistent=False)
        self.register_buffer(
            "window",
            torch.hamming_window(self.kernel_size, periodic=False)
            if self.kernel_size > 1
            else torch.ones(1),
            persistent=False,
        )
        # index[j, c]: which filter tap links input band c to output position j
        idx = torch.arange(bands)[None, :] - torch.arange(bands)[:, None] + half
        self.register_buffer("tap_index", idx.clamp(0, self.kernel_size - 1), persistent=False)
        self.register_buffer("tap_valid", (idx >= 0) & (idx < self.kernel_size), persistent=False)
        self.mix = nn.Sequential(*_conv_norm_act(filters * self.bins, out_channels, norm))
        self.out_channels = out_channels

    def filter_bank(self) -> torch.Tensor:
        """The band-pass impulse responses, shape ``(filters, kernel_size)``."""
        low = self.low.abs().clamp(max=0.49)
        high = (low + self.band.abs()).clamp(max=0.5)
        n = self.taps[None, :]

        def lowpass(f: torch.Tensor) -> torch.Tensor:  # 2f sinc(2 pi f n), well defined at n=0
            return 2 * f[:, None] * torch.sinc(2 * f[:, None] * n)

        return (lowpass(high) - lowpass(low)) * self.window[None, :]

    def spectral_weight(self) -> torch.Tensor:
        """The 1x1 convolution weight ``(filters * bins, bands, 1, 1)`` equal to filter + pool."""
        h = self.filter_bank()  # (K, L)
        full = h[:, self.tap_index] * self.tap_valid  # (K, out position j, in band c)
        pooled = F.adaptive_avg_pool1d(full.transpose(1, 2), self.bins)  # (K, c, bins)
        weight = pooled.permute(0, 2, 1).reshape(self.filters * self.bins, self.bands)
        return weight[:, :, None, None] * math.sqrt(self.bands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(F.conv2d(x, self.spectral_weight()))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_norm_act(channels, channels, norm, 3),
            nn.Conv2d(channels, channels, 3, padding=1, bias=norm == "none"),
            norm_layer(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class SpectralAttentionNet(nn.Module):
    """Band attention, then compression to ``out_channels`` and two residual blocks."""

    def __init__(self, bands: int, out_channels: int, norm: str = "batch") -> None:
        super().__init__()
        self.band_attention = SqueezeExcite(bands, reduction=4)
        self.compress = nn.Sequential(*_conv_norm_act(bands, out_channels, norm))
        self.blocks = nn.Sequential(
            ResidualBlock(out_channels, norm), ResidualBlock(out_channels, norm)
        )
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.compress(self.band_attention(x)))


@register_frontend("spectral_compressor")
def _spectral_compressor(cfg: ModelConfig) -> nn.Module:
    return SpectralCompressor(cfg.in_channels, cfg.frontend_channels, cfg.norm)


@register_frontend("sinc_spectral")
def _sinc_spectral(cfg: ModelConfig) -> nn.Module:
    return SincSpectral(cfg.in_channels, cfg.sinc_filters, cfg.frontend_channels, cfg.norm)


@register_frontend("spectral_attention_net")
def _spectral_attention_net(cfg: ModelConfig) -> nn.Module:
    return SpectralAttentionNet(cfg.in_channels, cfg.frontend_channels, cfg.norm)
