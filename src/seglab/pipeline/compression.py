"""``seglab compress``: factorise a trained run's model at several settings, fine-tune, measure.

For every setting the model is factorised (rank from a fixed rank, an energy
threshold or a parameter ratio), evaluated on the run's test split, fine-tuned
with the run's own data and loss, evaluated again and saved as its own model
folder ``<run>/compression/<setting>/model/`` (loadable by ``seglab predict``).
ONNX export and int8 quantisation of the original and of the best compressed
model are further rows. Latency is measured in this process, on the CPU, with a
fixed thread count, for every row alike (warm-up, median of repeats, one
``1 x C x size x size`` image). Writes ``compression/summary.csv``, the plot and
the table into the run report folder.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seglab.compress.export import export_onnx
from seglab.compress.factorize import (
    count_parameters,
    factorization_spec,
    factorize,
    plan_factorization,
)
from seglab.compress.latency import count_macs, fixed_threads, forward_call, interleaved_median_ms
from seglab.compress.quantize import onnx_dynamic_int8, onnx_static_int8, torch_dynamic_int8
from seglab.compress.ranks import RankRule
from seglab.compress.table import Row, best_compressed, text_table
from seglab.config import Config, EarlyStopConfig, load_config
from seglab.data.prepare import PreparedData, prepare_data
from seglab.errors import SeglabError
from seglab.inference.evaluate import evaluate_samples
from seglab.inference.predict import Predictor
from seglab.inference.settings import InferenceSettings
from seglab.models.exported import OnnxModel, PaddedExport, input_multiple, onnx_available
from seglab.models.io import load_model_folder, save_model_folder
from seglab.pipeline.common import log
from seglab.pipeline.evaluation import overlays
from seglab.report.compression import write_compression_report
from seglab.report.run_report import build_run_report
from seglab.runs import (
    CONFIG_FILE,
    SPLIT_FILE,
    Run,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
)

COMPRESSION_DIR = "compression"
CONTROL = "original-finetuned"
SUMMARY_FILE = "summary.csv"


@dataclass
class CompressOptions:
    finetune_epochs: int = 5
    finetune_lr: float = 1e-5
    patience: int = 3
    latency_repeats: int = 20
    threads: int | None = None  # torch/onnxruntime intra-op threads (None: torch's current)
    size: int = 256  # latency and MACs on 1 x C x size x size
    onnx: bool = True  # ONNX fp32 / int8 rows
    control: bool = True  # also fine-tune the unfactorised model the same way (a reference row)


@dataclass
class CompressionResult:
    folder: Path
    rows: list[Row]
    threads: int


def compress_run(
    run_path: str | os.PathLike, rules: list[RankRule], options: CompressOptions | None = None
) -> CompressionResult:
    options = options or CompressOptions()
    run_dir = Run.open(run_path)
    if not (run_dir.model_dir / "model.json").is_file():
        raise SeglabError(f"{run_dir.path} has no trained model", hint="train the run first")
    cfg = load_config(run_dir.file(CONFIG_FILE))
    model, meta = load_model_folder(run_dir.model_dir, "cpu")
    if meta.get("factorized"):
        raise SeglabError(
            f"{run_dir.path} holds an already compressed model", hint="compress the original run"
        )
    out = run_dir.path / COMPRESSION_DIR
    if out.exists():
        raise SeglabError(
            f"{out} exists: this run was compressed before",
            hint="move or delete that folder to compress again (its models stay usable elsewhere)",
        )
    split = run_dir.read_json(SPLIT_FILE) if run_dir.has(SPLIT_FILE) else None
    data = prepare_data(cfg, split)
    scorer = _Scorer(cfg, meta, data)
    x = torch.randn(1, cfg.model.in_channels, options.size, options.size)
    with fixed_threads(options.threads) as threads:
        log.info(
            "compress %s: %d setting(s), %d torch thread(s)", run_dir.name, len(rules), threads
        )
        original = _measure(model, x, options)
        iou, dice = scorer(model)
        pictures = overlays(scorer.samples, scorer.last, cfg.eval.n_overlays)
        rows = [Row("original", "-", *original, iou, dice, model_folder=str(run_dir.model_dir))]
        rows[0].timer = forward_call(model, x)
        rows[0].relative_to(rows[0])
        if options.control and options.finetune_epochs > 0:
            rows.append(_control_row(model, rows[0], cfg, data, scorer, out, options))
            _log_row(rows[-1])
        for rule in rules:
            rows.append(_compress_one(model, rule, cfg, meta, data, scorer, x, options, out))
            rows[-1].relative_to(rows[0])
            _log_row(rows[-1])
        rows += _deployment_rows(model, rows, cfg, meta, data, scorer, x, options, out)
        _time_rows(rows, options)
        for row in rows[1:]:
            if row.method == CONTROL:
                row.latency_ms = rows[0].latency_ms  # the same network as the original
            row.relative_to(rows[0])
    atomic_write_csv(out / SUMMARY_FILE, [r.to_csv() for r in rows], list(rows[0].to_csv()))
    write_compression_report(
        out, text_table(rows), [r.to_csv() for r in rows], _describe(options, threads, x)
    )
    build_run_report(run_dir.path, pictures)  # the run report gains the compression section
    return CompressionResult(out, rows, threads)


class _Scorer:
    """Test-split IoU and Dice of a model with the run's inference settings and threshold."""

    def __init__(self, cfg: Config, meta: dict[str, Any], data: PreparedData) -> None:
        self.cfg, self.meta, self.samples = cfg, meta, data.test or data.val
        # float32 passes whatever eval.cpu_precision says: the table compares number formats
        # (float32, int8, ONNX) itself, and each row's IoU is that of its own format
        self.settings = InferenceSettings.from_meta(meta).with_(cpu_precision="32")
        self.num_classes = cfg.model.num_classes

    def __call__(self, model: nn.Module) -> tuple[float, float]:
        predictor = Predictor(
            model, self.meta["normalization"], self.settings, "cpu", self.num_classes
        )
        evaluation = evaluate_samples(
            predictor,
            self.samples,
            num_classes=self.num_classes,
            threshold=self.meta["threshold"],
            ignore_index=self.cfg.data.ignore_index,
            settings=self.settings,
        )
        self.last = evaluation
        d = evaluation.metrics["dataset"]
        return float(d["iou"]), float(d["dice"])


def _measure(model: nn.Module, x: torch.Tensor, options: CompressOptions) -> tuple[int, int, float]:
    """Parameters and MACs; the latency is timed at the end, all rows in turns."""
    return count_parameters(model), count_macs(model, x), float("nan")


def _time_rows(rows: list[Row], options: CompressOptions) -> None:
    """Latency of every row with a timer, measured in turns (same process, same threads)."""
    timed = [r for r in rows if r.timer is not None]
    log.info("timing %d model(s), %d repeats each, in turns", len(timed), options.latency_repeats)
    for row, ms in zip(
        timed,
        interleaved_median_ms([r.timer for r in timed], 3, options.latency_repeats),
        strict=True,
    ):
        row.latency_ms = ms


def _compress_one(
    model: nn.Module,
    rule: RankRule,
    cfg: Config,
    meta: dict[str, Any],
    data: PreparedData,
    scorer: _Scorer,
    x: torch.Tensor,
    options: CompressOptions,
    out: Path,
) -> Row:
    folder = out / rule.label
    plans = plan_factorization(model, rule)
    atomic_write_csv(folder / "layers.csv", [p.to_json() for p in plans], list(plans[0].to_json()))
    compressed = factorize(model, plans)
    atomic_write_json(folder / SPLIT_FILE, data.split)  # the run's split: evaluate works here too
    atomic_write_text(folder / CONFIG_FILE, cfg.to_yaml())  # replaced by the fine-tuning config
    done = [p for p in plans if p.skipped is None]
    skipped = [p for p in plans if p.skipped is not None]
    if skipped:
        log.info(
            "%s: %d layer(s) left as they are: %s",
            rule.label,
            len(skipped),
            ", ".join(f"{p.name} ({p.skipped})" for p in skipped),
        )
    iou_before, dice_before = scorer(compressed)
    epochs_run = 0
    if options.finetune_epochs > 0 and done:
        compressed, epochs_run = _finetune(compressed, cfg, data, folder, options)
    iou_after, dice_after = scorer(compressed) if epochs_run else (None, None)
    spec = factorization_spec(plans)
    model_meta = {**meta, "factorized": spec, "compression": {"setting": rule.label}}
    save_model_folder(folder / "model", compressed, model_meta)
    compressed = compressed.eval()
    return Row(
        "low-rank",
        rule.label,
        *_measure(compressed.eval(), x, options),
        iou_before,
        dice_before,
        iou_after,
        dice_after,
        layers_factorized=len(done),
        layers_skipped=len(skipped),
        finetune_epochs=epochs_run,
        model_folder=str(folder / "model"),
        timer=forward_call(compressed, x),
    )


def _control_row(
    model: nn.Module,
    original: Row,
    cfg: Config,
    data: PreparedData,
    scorer: _Scorer,
    out: Path,
    options: CompressOptions,
) -> Row:
    """The original model fine-tuned with the same recipe: what fine-tuning alone gives."""
    tuned, epochs = _finetune(copy.deepcopy(model), cfg, data, out / CONTROL, options)
    iou, dice = scorer(tuned)
    row = Row(
        CONTROL,
        "-",
        original.parameters,
        original.macs,
        original.latency_ms,
        original.iou_before_ft,
        original.dice_before_ft,
        iou,
        dice,
        finetune_epochs=epochs,
    )
    return row.relative_to(original)


def _finetune(
    model: nn.Module, cfg: Config, data: PreparedData, folder: Path, options: CompressOptions
) -> tuple[nn.Module, int]:
    """Fine-tune into ``folder`` (its own checkpoints and history, never the run's)."""
    from seglab.engine.fit import fit  # Lightning loads slowly: only when fine-tuning

    tuned = cfg.model_copy(deep=True)
    tuned.train.epochs = options.finetune_epochs
    tuned.train.time_budget = None
    tuned.train.early_stopping = EarlyStopConfig(patience=options.patience)
    tuned.train.progress = False
    tuned.train.accelerator = "cpu"
    # the compressed network as a whole (an epoch ensemble stays one, its members tuned
    # through their mean): fine-tuning keeps its best epoch, not an ensemble of epochs
    tuned.train.checkpoint = tuned.train.checkpoint.model_copy(update={"ensemble": 1})
    tuned.optim.lr = options.finetune_lr
    tuned.schedule = tuned.schedule.model_copy(update={"name": "constant", "warmup_epochs": 0})
    run = Run(folder)
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    run.write_text(CONFIG_FILE, tuned.to_yaml())
    result = fit(tuned, run, data, model=model.train())
    return result.model, result.epochs_run


def _deployment_rows(
    model: nn.Module,
    rows: list[Row],
    cfg: Config,
    meta: dict[str, Any],
    data: PreparedData,
    scorer: _Scorer,
    x: torch.Tensor,
    options: CompressOptions,
    out: Path,
) -> list[Row]:
    """Int8 PyTorch (Linear layers) and ONNX fp32/int8 rows, for the original and the best."""
    targets = [("original", model, rows[0])]
    best = best_compressed(rows)
    if best is not None:
        best_model, _ = load_model_folder(best.model_folder, "cpu")
        targets.append((best.setting, best_model, best))
    result = []
    for name, net, source in targets:
        quantized, linears = torch_dynamic_int8(net)
        if linears:
            iou, dice = scorer(quantized)
            row = Row("torch-int8-dynamic", name, source.parameters, None, float("nan"), iou, dice)
            row.timer = forward_call(quantized, x)
            result.append(row)
        if options.onnx and not onnx_available():
            log.info(
                "no ONNX rows: onnx/onnxruntime are not installed (pip install 'seglab[onnx]')"
            )
        elif options.onnx:
            result += _onnx_rows(net, name, source, data, scorer, x, options, out / "onnx")
    return result


def _onnx_rows(
    net: nn.Module,
    name: str,
    source: Row,
    data: PreparedData,
    scorer: _Scorer,
    x: torch.Tensor,
    options: CompressOptions,
    folder: Path,
) -> list[Row]:
    fp32 = export_onnx(net, x, folder / f"{name}.onnx")
    variants = [("onnx", fp32)]
    try:
        variants.append(
            ("onnx-int8-dynamic", onnx_dynamic_int8(fp32, folder / f"{name}.int8d.onnx"))
        )
    except Exception as exc:  # noqa: BLE001 - a quantiser gap is a missing row, not a failure
        log.info("onnx dynamic int8 of %s failed: %s", name, exc)
    try:
        calibration = _calibration_batches(data, x.shape[-1], scorer.meta["normalization"])
        static = onnx_static_int8(fp32, folder / f"{name}.int8s.onnx", calibration)
        variants.append(("onnx-int8-static", static))
    except Exception as exc:  # noqa: BLE001
        log.info("onnx static int8 of %s failed: %s", name, exc)
    rows = []
    for method, path in variants:
        try:
            session = OnnxModel(path, threads=torch.get_num_threads())
            runner = PaddedExport(session, input_multiple(net))
            runner(x)
        except Exception as exc:  # noqa: BLE001 - e.g. an int8 operator onnxruntime lacks
            log.info("%s of %s does not run: %s", method, name, exc)
            continue
        iou, dice = scorer(runner)
        row = Row(method, name, source.parameters, source.macs, float("nan"), iou, dice)
        row.model_folder, row.timer = str(path), forward_call(runner, x)
        rows.append(row)
    return rows


def _calibration_batches(data: PreparedData, size: int, norm: dict) -> list[np.ndarray]:
    """Normalised crops of the validation (else training) images for static quantisation."""
    mean = np.asarray(norm["mean"], dtype=np.float32)[:, None, None]
    std = np.asarray(norm["std"], dtype=np.float32)[:, None, None]
    batches = []
    for s in (data.val or data.train)[:8]:
        image = s.image[:, :size, :size].astype(np.float32)
        batches.append(((image - mean) / std)[None])
    return batches


def _describe(options: CompressOptions, threads: int, x: torch.Tensor) -> dict[str, Any]:
    return {
        "latency": f"CPU, {threads} torch thread(s), batch 1 x {x.shape[1]} x {x.shape[2]} x "
        f"{x.shape[3]}, median of {options.latency_repeats} after 3 warm-up runs; "
        "all models timed in turns in one process",
        "finetune": f"up to {options.finetune_epochs} epoch(s), lr {options.finetune_lr:g}, "
        f"early-stopping patience {options.patience} on val_iou",
    }


def _log_row(row: Row) -> None:
    after = "-" if row.iou_after_ft is None else f"{row.iou_after_ft:.4f}"
    log.info(
        "%s: %s parameters (-%.1f%%), IoU %.4f before / %s after fine-tuning (%.1f%%)",
        row.method if row.setting == "-" else row.setting,
        f"{row.parameters:,}",
        row.reduction_pct,
        row.iou_before_ft,
        after,
        row.recovery_pct,
    )
