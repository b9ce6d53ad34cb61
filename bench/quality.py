"""Test IoU and Dice that a config reaches in a fixed wall-clock budget, beside peer U-Nets.

Each run trains with seglab's own pipeline (data check, patches, augmentation, loss,
optimiser, schedule, checkpoint chosen on validation, threshold tuned on validation),
then evaluates on the config's test split. A peer (``--peer smp``: segmentation_models_pytorch
``Unet(resnet18)`` from scratch; ``--peer monai``: MONAI ``BasicUNet``) is trained by the
same pipeline with only the model swapped, in the same process and on the same split, so
the patches, loss, optimiser, budget and evaluation are identical. Repeats change the
training seed and keep the split (``data.split.seed``).

    PYTHONPATH=src python bench/quality.py configs/lucchi.yaml --budget 10m \\
        [--peer smp] [--peer monai] [--repeats 3] [--seed 0] [--set KEY=VALUE ...] \\
        [--out bench/results/quality.jsonl] [--runs-dir /tmp/quality-runs]

``--budget null`` (YAML's null, as ``--set`` reads it) trains for the config's
``train.epochs`` instead (``--set train.epochs=N``) with no clock: a budgeted run fits as
many epochs as the machine's speed allows, so its seed does not fix it, while a run of
fixed epochs depends on its seed and settings alone.

Peers are benchmark-only extras: ``pip install -e ".[bench]"``. Every run prints one line
and, with ``--out``, appends it as JSON; ``bench/quality_table.py`` turns such files into
the mean and spread per config and system.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_cli import guarded
from precision_step import train_step_s
from torch import nn
from torch.nn import functional as F

from seglab import pipeline
from seglab.config import Config, ModelConfig, load_config
from seglab.models import registry
from seglab.runs import read_json

PEERS = {"smp": "peer_smp_unet_resnet18", "monai": "peer_monai_basicunet"}


class PadToMultiple(nn.Module):
    """Reflect-pads the input to a multiple of ``multiple`` and crops the output back."""

    def __init__(self, model: nn.Module, multiple: int) -> None:
        super().__init__()
        self.model = model
        self.multiple = multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % self.multiple, -w % self.multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        return self.model(x)[..., :h, :w]


def smp_unet(cfg: ModelConfig) -> nn.Module:
    import segmentation_models_pytorch as smp

    net = smp.Unet(
        "resnet18", encoder_weights=None, in_channels=cfg.in_channels, classes=cfg.num_classes
    )
    return PadToMultiple(net, 32)


def monai_basic_unet(cfg: ModelConfig) -> nn.Module:
    from monai.networks.nets import BasicUNet

    net = BasicUNet(spatial_dims=2, in_channels=cfg.in_channels, out_channels=cfg.num_classes)
    return PadToMultiple(net, 16)


def register_peers() -> None:
    registry.available_models()
    registry._MODELS.setdefault(PEERS["smp"], smp_unet)
    registry._MODELS.setdefault(PEERS["monai"], monai_basic_unet)


def tuned_val_iou(metrics: dict) -> float | None:
    """An evaluation's validation IoU at the threshold it tuned there (None: it tuned none)."""
    tuning = metrics.get("threshold_tuning")
    return float(tuning["val_iou_at_chosen"]) if tuning else None


def postprocessed_val_iou(metrics: dict) -> float | None:
    """The same after the configured post-processing (None: none configured, or tuned).

    ``val_iou`` scores the raw maps, so it cannot tell one post-processing from another.
    """
    value = (metrics.get("threshold_tuning") or {}).get("val_iou_postprocessed")
    return None if value is None else float(value)


def reference_step_ms(device: torch.device, steps: int = 10) -> float:
    """The machine's speed on a fixed workload, to compare runs made on different machines.

    Median milliseconds of a float32 training step of seglab's default U-Net (base 16,
    depth 4) on a batch of 8 x 1 x 128 x 128, after 3 warm-up steps. Budget runs on a
    machine that is x % slower get about x % fewer steps.
    """
    torch.manual_seed(0)
    net = registry.create_model(ModelConfig()).to(device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.randn(8, 1, 128, 128, device=device)
    y = (torch.rand(8, 1, 128, 128, device=device) > 0.9).float()
    times = [train_step_s(net, opt, x, y) for _ in range(3 + steps)][3:]
    return round(1000 * statistics.median(times), 1)


def budget_label(time_budget: str | None, epochs: int) -> str:
    """What a record's ``budget`` says: the clock, or the epochs when there was none."""
    return time_budget if time_budget is not None else f"{epochs} epochs"


def pipeline_fingerprint(cfg: Config) -> str:
    """12 hex digits of SHA-256 over the resolved config, less what does not make one
    pipeline differ from another: the network (``model``: a peer builds its own and ignores
    ``model.*``), the training seed, the run's ``name``, ``data.root`` (where the data lies
    on this machine; the record's ``config`` names the dataset) and ``train.progress``.
    Runs with one fingerprint read the same data, split, patches and augmentation, and
    share the loss, optimiser, schedule, training and evaluation settings, however
    ``--set`` and the config file spelled them: ``quality_table.py`` compares seglab with a
    peer by it where their settings labels differ, and says where one row averages runs of
    several."""
    settings = cfg.model_dump(mode="json")
    for key in ("model", "seed", "name"):
        settings.pop(key)
    settings["data"].pop("root")
    settings["train"].pop("progress")
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def one_run(config: str, overrides: list[str], runs_dir: Path, system: str) -> dict:
    cfg = load_config(config, overrides)
    on_gpu = cfg.train.accelerator != "cpu" and torch.cuda.is_available()
    reference_ms = reference_step_ms(torch.device("cuda" if on_gpu else "cpu"))
    start = time.perf_counter()
    trained = pipeline.train(cfg, runs_dir).run.path
    train_s = time.perf_counter() - start
    metrics = pipeline.evaluate_run(trained).metrics
    last = torch.load(trained / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    # optimiser steps, a cut-short last epoch included (before last.ckpt followed every
    # epoch, this was the step count of the last epoch that improved val IoU)
    steps = int(last["global_step"])
    images = steps * cfg.train.batch_size * cfg.train.accumulate_grad_batches
    summary = read_json(trained / "train_summary.json")
    return {
        "config": Path(config).stem,
        "system": system,
        "model": cfg.model.name,
        "seed": cfg.seed,
        "budget": budget_label(cfg.train.time_budget, cfg.train.epochs),
        "precision": summary.get("precision", cfg.train.precision),  # auto resolved
        "channels_last": summary.get("channels_last", cfg.train.channels_last),  # auto resolved
        "overrides": [o for o in overrides if not o.startswith(("seed=", "train.time_budget="))],
        "pipeline": pipeline_fingerprint(cfg),  # all but the network, resolved
        "epochs": summary["epochs_run"],
        "steps": steps,
        "images_seen": images,
        "stopped_because": summary["stopped_because"],
        "best_epoch": summary["best_epoch"],
        "best_val_iou": summary.get("best_val_iou"),  # what the kept checkpoint was chosen by
        "kept_epoch": summary.get("kept_epoch"),  # best_epoch, or the last (keep: last)
        "ensemble_epochs": summary.get("ensemble_epochs"),  # train.checkpoint.ensemble > 1
        # the kept weights on validation at the threshold tuned there
        "val_iou": tuned_val_iou(metrics),
        "val_iou_postprocessed": postprocessed_val_iou(metrics),
        "train_s": round(train_s, 1),  # data check, preparation, fit and saving
        "fit_s": summary["seconds"],  # inside the budget: the training loop itself
        "test_iou": metrics["dataset"]["iou"],
        "test_dice": metrics["dataset"]["dice"],
        "test_image_iou": metrics["per_image_mean"]["iou"],
        "test_image_dice": metrics["per_image_mean"]["dice"],
        "threshold": metrics["threshold"],
        "n_test_images": metrics["n_images"],
        # eval.cpu_precision as resolved (absent from evaluations before the setting: 32)
        "inference_precision": metrics.get("inference_precision", "32"),
        "run": str(trained),
        # the code that trained it: seglab's checkout (``+dirty`` with uncommitted changes)
        "commit": read_json(trained / "environment.json").get("git_commit"),
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads, "
        + (torch.cuda.get_device_name(0) if on_gpu else "cpu"),
        "reference_step_ms": reference_ms,  # the machine's speed before the run
    }


def append_record(out: Path, record: dict) -> None:
    """Append ``record`` to the JSON-lines file ``out`` (one whole line per write)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as fh:
        fh.write(json.dumps(record) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument(
        "--budget",
        default="10m",
        help="wall-clock training budget, e.g. 10m; null: the config's train.epochs, no clock",
    )
    parser.add_argument("--peer", action="append", choices=sorted(PEERS), default=[])
    parser.add_argument("--repeats", type=int, default=1, help="training seeds, one split")
    parser.add_argument("--seed", type=int, default=0, help="first training seed")
    parser.add_argument("--no-seglab", action="store_true", help="peers only")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, help="append one JSON line per run here")
    parser.add_argument("--runs-dir", type=Path, help="keep the run folders here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    register_peers()
    # one split for every run; the budget is checked here, before any run
    split_seed = load_config(args.config, [*args.sets, f"train.time_budget={args.budget}"]).seed
    systems = ([] if args.no_seglab else [("seglab", [])]) + [
        (peer, [f"model.name={PEERS[peer]}"]) for peer in args.peer
    ]
    print(f"command: {' '.join([sys.executable, *sys.argv])}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = args.runs_dir or Path(tmp)
        for seed in range(args.seed, args.seed + args.repeats):
            for system, model_sets in systems:
                overrides = [
                    *args.sets,
                    *model_sets,
                    f"seed={seed}",
                    f"data.split.seed={split_seed}",
                    f"train.time_budget={args.budget}",
                    "train.progress=false",
                ]
                result = one_run(args.config, overrides, runs_dir, system)
                print(
                    "quality: {config} {system:<6} model {model} seed {seed} budget {budget} "
                    "epochs {epochs} steps {steps} images {images_seen} "
                    "test IoU {test_iou:.4f} Dice {test_dice:.4f} "
                    "(per image IoU {test_image_iou:.4f} Dice {test_image_dice:.4f}, "
                    "{n_test_images} images) best epoch {best_epoch} "
                    "fit {fit_s:.0f}s, stopped: {stopped_because}; {machine}, "
                    "reference step {reference_step_ms} ms".format(**result),
                    flush=True,
                )
                if args.out:
                    append_record(args.out, result)


if __name__ == "__main__":
    guarded(main)
