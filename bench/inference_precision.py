"""Forward passes on a CPU in float32 against bfloat16 (``eval.cpu_precision``).

Times ``Predictor.probabilities`` on one whole image (no windows, no TTA) with
``cpu_precision: 32`` and ``bf16-mixed`` (bfloat16 autocast, channels-last input and
weights), and bfloat16 in the NCHW layout for what channels-last adds, interleaved, best of
``--repeats``, and prints how far the probabilities of float32 and bf16-mixed are apart.
The network is a model folder's (``--model runs/<run>/model``: trained weights, so the
difference is that of a real model) or the config's with random weights.

    PYTHONPATH=src python bench/inference_precision.py [--model runs/<run>/model]
        [--config configs/lucchi.yaml] [--image FILE | --height 768 --width 1024]
        [--repeats 5]

On a CPU without bfloat16 instructions (``seglab.models.hardware.cpu_has_bf16``) bfloat16
is emulated and slower; the script says which it is.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
from bench_cli import guarded

from seglab.config import load_config
from seglab.data.files import read_image
from seglab.inference.predict import Predictor
from seglab.inference.settings import InferenceSettings
from seglab.models.hardware import cpu_has_bf16
from seglab.models.io import load_model_folder
from seglab.models.registry import create_model

PRECISIONS = ("32", "bf16-mixed")
BF16_NCHW = "bf16-mixed, NCHW"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a model folder (runs/<run>/model)")
    parser.add_argument("--config", help="without --model: this config's network, random")
    parser.add_argument("--image", help="an image file to predict (else a random image)")
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.repeats < 1 or args.height < 8 or args.width < 8:
        raise SystemExit("--repeats must be at least 1 and the image at least 8x8 px")
    if args.model:
        model, meta = load_model_folder(args.model)
        channels, what = meta["model"].get("in_channels", 1), args.model
        normalization = meta["normalization"]
    else:
        cfg = load_config(args.config)
        torch.manual_seed(cfg.seed)
        model, channels = create_model(cfg.model), cfg.model.in_channels
        normalization = {"mean": [0.5] * channels, "std": [0.25] * channels}
        what = f"{args.config or 'the built-in default'}'s {cfg.model.name}, random weights"
    if args.image:
        image = torch.from_numpy(read_image(Path(args.image)))[None]
        if image.shape[1] != channels:
            raise SystemExit(f"{args.image} has {image.shape[1]} channels, the model {channels}")
    else:
        shape = (1, channels, args.height, args.width)
        image = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    height, width = image.shape[-2:]
    predictors = {
        p: Predictor(model, normalization, InferenceSettings(window=None, cpu_precision=p))
        for p in PRECISIONS
    }
    # what channels-last adds to bfloat16: the same passes in the NCHW layout
    nchw = Predictor(
        model, normalization, InferenceSettings(window=None, cpu_precision="bf16-mixed")
    )
    nchw.channels_last = False
    nchw.model = nchw.model.to(memory_format=torch.contiguous_format)
    predictors[BF16_NCHW] = nchw
    best = dict.fromkeys(predictors, float("inf"))
    out = {}
    for name, predictor in predictors.items():  # warm-up: oneDNN picks its kernels
        out[name] = predictor.probabilities(image)
    for _ in range(args.repeats):
        for name, predictor in predictors.items():
            start = time.perf_counter()
            predictor.probabilities(image)
            best[name] = min(best[name], time.perf_counter() - start)
    native = "native" if cpu_has_bf16() else "emulated (no AVX512-BF16 or AMX)"
    print(
        f"machine: {platform.machine()} CPU, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, bfloat16 {native}"
    )
    print(f"model: {what}; one {height}x{width} image, best of {args.repeats}")
    for name in predictors:
        print(f"  cpu_precision {name:<16} {best[name] * 1000:8.1f} ms")
    difference = (out["bf16-mixed"] - out["32"]).abs()
    print(
        f"  speed-up {best['32'] / best['bf16-mixed']:.2f}x; probabilities apart by at most "
        f"{difference.max():.4f}, {difference.mean():.5f} on average"
    )


if __name__ == "__main__":
    guarded(main)
