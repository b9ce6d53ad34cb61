"""Milliseconds per update of an exponential moving average of a model's weights.

    PYTHONPATH=src python bench/ema_update.py [--model unet] [--peer-smp] [--repeats 50]
        [--threads N]

The update ``train.ema_decay`` makes after every optimizer step, with the two averaging
functions torch's ``AveragedModel`` offers: ``avg_fn`` (one tensor at a time, what
Lightning's ``EMAWeightAveraging`` uses alone) and ``multi_avg_fn`` (``torch._foreach``,
what seglab passes it). The two alternate update by update; the median is printed.
``--peer-smp`` times segmentation_models_pytorch's ``Unet(resnet18)`` (the ``bench``
extra), the quality benchmark's peer.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from bench_cli import guarded
from torch.optim.swa_utils import AveragedModel, get_ema_avg_fn, get_ema_multi_avg_fn

from seglab.config import ModelConfig
from seglab.models.registry import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unet")
    parser.add_argument("--peer-smp", action="store_true", help="SMP Unet(resnet18) instead")
    parser.add_argument("--decay", type=float, default=0.99)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.peer_smp:
        import segmentation_models_pytorch as smp

        model, name = smp.Unet("resnet18", encoder_weights=None, in_channels=1, classes=1), "smp"
    else:
        model, name = create_model(ModelConfig(name=args.model)), args.model
    averages = {
        "avg_fn": AveragedModel(model, avg_fn=get_ema_avg_fn(args.decay), use_buffers=True),
        "multi_avg_fn": AveragedModel(
            model, multi_avg_fn=get_ema_multi_avg_fn(args.decay), use_buffers=True
        ),
    }
    times: dict[str, list[float]] = {key: [] for key in averages}
    for i in range(args.repeats + 3):
        with torch.no_grad():
            for param in model.parameters():  # new weights, as after an optimizer step
                param.add_(torch.randn_like(param), alpha=1e-3)
        for key, average in averages.items():
            start = time.perf_counter()
            average.update_parameters(model)
            if i >= 3:  # the first updates copy the weights
                times[key].append((time.perf_counter() - start) * 1000)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(
        f"ema_update: {name} ({params:.1f}M parameters), "
        f"{platform.machine()} {torch.get_num_threads()} threads: "
        + ", ".join(f"{key} {statistics.median(t):.1f} ms" for key, t in times.items())
    )
    a, b = (dict(averages["avg_fn"].named_parameters()), averages["multi_avg_fn"])
    same = all(torch.allclose(a[n], p, atol=1e-6) for n, p in b.named_parameters())
    print(f"ema_update: the two averages agree: {same}")


if __name__ == "__main__":
    guarded(main)
