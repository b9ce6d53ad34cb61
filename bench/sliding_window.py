"""seglab's sliding window versus MONAI's ``sliding_window_inference`` on CPU.

Same model (the default U-Net, random weights, eval mode), same window, overlap 0.5,
Gaussian blending, same number of windows per forward pass, on a 1024x768 image and
a 20-slice 256x256 stack. Prints the largest absolute difference of the
probabilities and the time of each (best of --repeats, interleaved), and the
throughput ratio. Also times seglab's windows with the model as given (no batch-norm
folding, no channels-last input) to show where the difference comes from.

    pip install -e ".[bench]"
    PYTHONPATH=src python bench/sliding_window.py [--window 128] [--batch 4] [--repeats 2]
        [--threads N]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable

import torch
from bench_cli import guarded

from seglab.config import ModelConfig
from seglab.inference.predict import Predictor
from seglab.inference.settings import InferenceSettings
from seglab.inference.windows import sliding_window
from seglab.losses import probabilities
from seglab.models.registry import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4, help="windows per forward pass")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        from monai.inferers import sliding_window_inference
    except ImportError:
        sys.exit('MONAI is needed for this benchmark: pip install -e ".[bench]"')
    import monai

    torch.manual_seed(0)
    model = create_model(ModelConfig()).eval()
    for m in model.modules():  # plausible batch-norm statistics instead of the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    norm = {"mean": [0.5], "std": [0.25]}
    settings = InferenceSettings(
        window=args.window, overlap=0.5, blending="gaussian", batch_windows=args.batch
    )
    predictor = Predictor(model, norm, settings)

    def model_probs(w: torch.Tensor) -> torch.Tensor:
        return probabilities(model(w))

    def monai_run(x: torch.Tensor) -> torch.Tensor:
        return sliding_window_inference(
            (x - 0.5) / 0.25, (args.window, args.window), args.batch, model_probs,
            overlap=0.5, mode="gaussian", sigma_scale=0.125,
        )  # fmt: skip

    def seglab_run(x: torch.Tensor) -> torch.Tensor:
        return predictor.probabilities(x)

    def seglab_plain_model(x: torch.Tensor) -> torch.Tensor:
        return sliding_window(
            model_probs, (x - 0.5) / 0.25, args.window, 0.5, "gaussian", 0.125, args.batch
        )

    gen = torch.Generator().manual_seed(1)
    inputs = {
        "image 1024x768": torch.rand(1, 1, 768, 1024, generator=gen),
        "stack 20x256x256": torch.rand(20, 1, 256, 256, generator=gen),
    }
    print(f"seglab sliding window vs MONAI {monai.__version__} sliding_window_inference")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}, load average at start "
        f"{os.getloadavg()[0]:.2f}"
    )
    print(
        f"model: unet (default config, {sum(p.numel() for p in model.parameters()):,} "
        f"parameters); window {args.window}, overlap 0.5, gaussian (sigma 0.125 x window), "
        f"{args.batch} windows per pass"
    )
    runners: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "monai": monai_run,
        "seglab": seglab_run,
        "seglab, model as given": seglab_plain_model,
    }
    for label, x in inputs.items():
        with torch.inference_mode():
            for run in runners.values():  # warm-up on a small input
                run(x[:1, :, : 2 * args.window, : 2 * args.window])
            outputs: dict[str, torch.Tensor] = {}
            wall: dict[str, list[float]] = {name: [] for name in runners}
            cpu: dict[str, list[float]] = {name: [] for name in runners}
            for _ in range(args.repeats):  # interleaved, so load changes hit all alike
                for name, run in runners.items():
                    start, start_cpu = time.perf_counter(), time.process_time()
                    outputs[name] = run(x)
                    cpu[name].append(time.process_time() - start_cpu)
                    wall[name].append(time.perf_counter() - start)
        print(f"\n{label}: best of {args.repeats}, wall-clock and CPU seconds")
        for name in runners:
            print(f"  {name:<24} wall {min(wall[name]):7.2f} s   cpu {min(cpu[name]):7.2f} s")
        for name in ("seglab", "seglab, model as given"):
            diff = float((outputs[name] - outputs["monai"]).abs().max())
            print(f"  max |p({name}) - p(monai)| = {diff:.2e}")
        for name in ("seglab", "seglab, model as given"):
            ratio_wall = min(wall["monai"]) / min(wall[name])
            ratio_cpu = min(cpu["monai"]) / min(cpu[name])
            print(
                f"  throughput of {name} / MONAI: "
                f"{ratio_wall:.2f}x wall-clock, {ratio_cpu:.2f}x CPU"
            )
    print(f"\ncommand: PYTHONPATH=src python {' '.join(sys.argv)}")


if __name__ == "__main__":
    guarded(main)
