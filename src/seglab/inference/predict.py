"""Apply a trained model to whole images of any size: :class:`Predictor`.

A predictor normalises the images with the model's training statistics, runs the
sliding window (with test-time augmentation if asked) on its device and returns
class probabilities. The model is prepared for inference once: batch norms are
folded into the convolutions before them and, where the model accepts it, inputs
are passed in channels-last layout (faster convolutions on CPU and GPU).
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from typing import Protocol

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from seglab.config import cpu_precision_spelling
from seglab.inference.settings import InferenceSettings
from seglab.inference.tta import with_tta
from seglab.inference.windows import sliding_window
from seglab.losses import probabilities
from seglab.models.hardware import cpu_has_bf16


class ProbabilityModel(Protocol):
    """Anything that maps images (N, C, H, W in [0, 1]) to probabilities (N, K, H, W)."""

    num_classes: int

    def probabilities(self, images: np.ndarray | torch.Tensor) -> torch.Tensor: ...


class Predictor:
    """One model with its normalisation and inference settings, on one device."""

    def __init__(
        self,
        model: nn.Module,
        normalization: dict[str, list[float]],
        settings: InferenceSettings | None = None,
        device: torch.device | str = "cpu",
        num_classes: int = 1,
    ) -> None:
        self.device = torch.device(device)
        self.settings = settings or InferenceSettings()
        self.num_classes = num_classes
        self.model = prepare_for_inference(model).to(self.device)
        self.mean = torch.tensor(normalization["mean"], dtype=torch.float32, device=self.device)
        self.std = torch.tensor(normalization["std"], dtype=torch.float32, device=self.device)
        self.half = self.settings.half_precision and self.device.type == "cuda"
        self.cpu_bf16 = self.device.type == "cpu" and cpu_bf16(self.settings.cpu_precision)
        # channels-last convolutions are faster on GPUs (tensor cores) and with bfloat16 on
        # a CPU (on an AMX Xeon a 1024x768 Lucchi slice took 30 ms against 57 NCHW,
        # bench/inference_precision.py); in float32 on CPUs they were slower on an earlier
        # machine (bench/sliding_window.py), so NCHW stays there
        self.channels_last = self.device.type == "cuda" or self.cpu_bf16
        if self.cpu_bf16:  # weights in the same layout, or each pass reorders them
            self.model = self.model.to(memory_format=torch.channels_last)

    @property
    def precision(self) -> str:
        """The number format of the forward passes: 16-mixed, bf16-mixed or 32."""
        return "16-mixed" if self.half else "bf16-mixed" if self.cpu_bf16 else "32"

    @torch.inference_mode()
    def probabilities(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Probabilities (N, K, H, W) on the device of images (N, C, H, W) or (C, H, W) in [0, 1].

        K = 1 (the foreground) for binary models. Float16 on a GPU with
        ``half_precision``, float32 otherwise (also after bfloat16 forward passes on a CPU).
        """
        x = torch.as_tensor(images, dtype=torch.float32)
        x = x[None] if x.ndim == 3 else x
        x = x.to(self.device)
        x = (x - self.mean[:, None, None]) / self.std[:, None, None]
        probs = with_tta(self._windows, x, self.settings.tta)
        return probs.half() if self.half else probs

    def _windows(self, x: torch.Tensor) -> torch.Tensor:
        s = self.settings
        return sliding_window(
            self._forward, x, s.window, s.overlap, s.blending, s.sigma_scale, s.batch_windows
        )

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.half:
            autocast = torch.autocast("cuda", dtype=torch.float16)
        elif self.cpu_bf16:
            autocast = torch.autocast("cpu", dtype=torch.bfloat16)
        else:
            autocast = nullcontext()
        with autocast:
            if self.channels_last:
                try:
                    logits = self.model(x.contiguous(memory_format=torch.channels_last))
                except RuntimeError:  # a model that needs contiguous NCHW (e.g. .view())
                    self.channels_last = False
                    logits = self.model(x)
            else:
                logits = self.model(x)
        return probabilities(logits.float())


def cpu_bf16(cpu_precision: str) -> bool:
    """Whether ``eval.cpu_precision`` means bfloat16 forward passes on this CPU.

    Spelt as the config accepts it (``bf16`` is ``bf16-mixed``); any other value is an
    error, not float32 in silence.
    """
    precision = cpu_precision_spelling(cpu_precision)
    return cpu_has_bf16() if precision == "auto" else precision == "bf16-mixed"


def prepare_for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with batch norms folded into their convolutions."""
    model = copy.deepcopy(model).eval()
    fold_batch_norms(model)
    return model


def fold_batch_norms(module: nn.Module) -> None:
    """Fold every BatchNorm2d that directly follows a Conv2d in a Sequential (in place)."""
    for child in module.children():
        fold_batch_norms(child)
    if not isinstance(module, nn.Sequential):
        return
    layers = list(module)
    for i in range(len(layers) - 1):
        conv, bn = layers[i], layers[i + 1]
        if (
            type(conv) is nn.Conv2d
            and type(bn) is nn.BatchNorm2d
            and bn.track_running_stats
            and bn.running_mean is not None
        ):
            module[i] = fuse_conv_bn_eval(conv, bn)
            module[i + 1] = nn.Identity()


def inference_device(accelerator: str = "auto") -> torch.device:
    """The device to predict on: a GPU when one is there and allowed, else the CPU."""
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    if accelerator == "mps" and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def labels_from_probabilities(probs: np.ndarray | torch.Tensor, threshold: float) -> np.ndarray:
    """Class map (int64, H x W, or N x H x W for a batch): threshold the foreground, or argmax.

    ``probs`` is (K, H, W) or (N, K, H, W).
    """
    p = torch.as_tensor(probs)
    channel = p.ndim - 3
    if p.shape[channel] == 1:
        labels = p.select(channel, 0) > threshold
    else:
        labels = p.argmax(dim=channel)
    return labels.to(torch.int64).cpu().numpy()


def predict_probabilities(
    model: nn.Module,
    image: np.ndarray,
    normalization: dict[str, list[float]],
    device: torch.device | str = "cpu",
    settings: InferenceSettings | None = None,
) -> np.ndarray:
    """Class probabilities (K x H x W, float32) for one image (C x H x W in [0, 1])."""
    predictor = Predictor(model, normalization, settings, device)
    return predictor.probabilities(image)[0].float().cpu().numpy()
