"""The ``seglab`` command: parses arguments, calls the pipeline, maps errors to exit codes.

Exit codes: 0 success, 2 bad input (one line naming the culprit), 1 internal failure.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from seglab import __version__
from seglab.errors import SeglabError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Train, evaluate, compare and compress U-Net-family segmentation models.",
    pretty_exceptions_enable=False,
)
console = Console()

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config value: section.key=value (repeatable)."),
]
RunsDir = Annotated[Path, typer.Option("--runs-dir", help="Where run folders are created.")]


def _version(value: bool) -> None:
    if value:
        console.print(f"seglab {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _setup_console_logging()


@app.command()
def run(
    config: Annotated[Path | None, typer.Argument(help="YAML config; default: built-in.")] = None,
    set_: SetOption = None,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Check data, train, test and report: the whole pipeline in a new run folder."""
    from seglab.config import load_config
    from seglab.pipeline import run as run_pipeline

    result = run_pipeline(load_config(config, set_ or []), runs_dir)
    _print_result(result.run.path, result.metrics)


@app.command()
def train(
    config: Annotated[Path | None, typer.Argument(help="YAML config; default: built-in.")] = None,
    set_: SetOption = None,
    runs_dir: RunsDir = Path("runs"),
    resume: Annotated[
        Path | None,
        typer.Option("--resume", help="Continue this run folder from its last checkpoint."),
    ] = None,
) -> None:
    """Train into a new run folder (no test evaluation), or continue one with --resume."""
    from seglab.config import load_config
    from seglab.pipeline import resume as resume_pipeline
    from seglab.pipeline import train as train_pipeline

    if resume is not None:
        if config is not None or set_:
            raise SeglabError(
                "--resume takes no CONFIG or --set: the run folder's config.yaml is used",
                hint="edit nothing; a resumed run must equal the run it continues",
            )
        result = resume_pipeline(resume)
    else:
        result = train_pipeline(load_config(config, set_ or []), runs_dir)
    _print_result(result.run.path, None)


@app.command()
def sweep(
    config: Annotated[Path | None, typer.Argument(help="YAML config; default: built-in.")] = None,
    models: Annotated[
        str, typer.Option("--models", help="Comma-separated model names, e.g. unet,swin_unet.")
    ] = "",
    set_: SetOption = None,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Run the whole pipeline once per model, each in its own process and run folder."""
    from seglab.config import load_config
    from seglab.sweep import run_sweep

    names = [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        raise SeglabError("--models is empty", hint="pass e.g. --models unet,swin_unet")
    cfg = load_config(config, set_ or [])  # a bad config fails here, once, not once per model
    result = run_sweep(cfg, config, names, set_ or [], runs_dir)
    table = Table("model", "status", "test IoU", "seconds", "run folder")
    for row in result.rows:
        iou = row.get("test_iou")
        table.add_row(
            row["model"],
            row["status"],
            "-" if iou is None else f"{iou:.4f}",
            f"{row['seconds']:.0f}",
            str(row.get("run_dir") or "-"),
        )
    console.print(table)
    console.print(f"sweep folder: {result.folder}")


@app.command()
def evaluate(
    run_dir: Annotated[list[Path], typer.Argument(help="A run folder (more with --ensemble).")],
    data: Annotated[
        Path | None,
        typer.Option("--data", help="A labelled folder (images/ + masks/), not the test split."),
    ] = None,
    tta: Annotated[
        bool, typer.Option("--tta", help="Average the 8 flips and rotations of each image.")
    ] = False,
    ensemble: Annotated[
        bool,
        typer.Option(
            "--ensemble",
            help="Evaluate the mean probabilities of all the runs named: RUN --ensemble RUN2 RUN3.",
        ),
    ] = False,
    set_: SetOption = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for this evaluation (default: <run>/evaluations/...)."),
    ] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            "--checkpoint",
            help="Evaluate this checkpoint's weights instead of the kept model: a file in "
            "<run>/checkpoints/ (last.ckpt, best.ckpt, epoch_N.ckpt) or a path.",
        ),
    ] = None,
) -> None:
    """Metrics of a trained run with 95% confidence intervals (metrics.json, per_image.csv, report).

    Without options: the run's test split, written into the run folder (the binary
    threshold is tuned on the validation split and stored in model/model.json).
    With --data, --tta, --ensemble, --set or --checkpoint: written to a new folder under
    <run>/evaluations/ (or --out).
    """
    from seglab.pipeline import evaluate_run

    if len(run_dir) > 1 and not ensemble:
        raise SeglabError(
            f"{len(run_dir)} run folders given", hint="pass one run, or --ensemble to average them"
        )
    result = evaluate_run(
        run_dir[0],
        data_dir=data,
        tta=tta,
        ensemble=run_dir[1:],
        overrides=set_ or [],
        out_dir=out,
        checkpoint=checkpoint,
    )
    _print_result(result.run.path, result.metrics)


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="A run folder or an exported model/ folder.")],
    inputs: Annotated[
        list[Path], typer.Argument(help="Image files, folders of images, or TIFF stacks.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the masks.")],
    probabilities: Annotated[
        bool, typer.Option("--probabilities", help="Also write <stem>_prob.tif (float32).")
    ] = False,
    overlays: Annotated[
        bool, typer.Option("--overlays", help="Also write the mask tinted over the image.")
    ] = False,
    tta: Annotated[
        bool, typer.Option("--tta", help="Average the 8 flips and rotations of each image.")
    ] = False,
    device: Annotated[
        str, typer.Option("--device", help="auto (GPU if there is one) | cpu | cuda | mps.")
    ] = "auto",
    cpu_precision: Annotated[
        str | None,
        typer.Option(
            "--cpu-precision",
            help="Forward passes on a CPU: 32 | bf16-mixed | auto (bfloat16 where the CPU has "
            "it natively). Default: the model folder's eval.cpu_precision.",
        ),
    ] = None,
) -> None:
    """Masks of images, folders and TIFF stacks, named after the inputs (<stem>.png / .tif)."""
    from seglab.config import cpu_precision_spelling
    from seglab.pipeline import predict as predict_pipeline

    if device not in ("auto", "cpu", "cuda", "gpu", "mps"):
        raise SeglabError(f"--device {device!r} is not known", hint="use auto, cpu, cuda or mps")
    if cpu_precision is not None:
        try:
            cpu_precision_spelling(cpu_precision)
        except ValueError:
            raise SeglabError(
                f"--cpu-precision {cpu_precision!r} is not known", hint="use 32, bf16-mixed or auto"
            ) from None
    written = predict_pipeline(
        model, inputs, out, probabilities, overlays, tta, device, cpu_precision
    )
    console.print(f"{len(written)} file(s) written to {out}")


OutDir = Annotated[Path, typer.Option("--out", help="Where data_check.html and .json go.")]


@app.command("check-data")
def check_data(
    config_or_dir: Annotated[
        Path, typer.Argument(help="A YAML config, or a folder with images/ and masks/.")
    ],
    set_: SetOption = None,
    out: OutDir = Path("."),
) -> None:
    """Check a dataset: data_check.html + data_check.json; exit 2 on errors, 0 with warnings."""
    from seglab.config import load_config
    from seglab.pipeline import check_data_report

    is_dir = config_or_dir.is_dir()
    if is_dir:
        base = ["data.source=folder", f"data.root={config_or_dir}"]
        cfg = load_config(None, base + list(set_ or []))
    else:
        cfg = load_config(config_or_dir, set_ or [])
    check, html = check_data_report(cfg, out, match_model=not is_dir)
    for issue in (check.errors + check.warnings)[:20]:
        typer.echo(f"{issue.severity}: {issue.file}: {issue.problem}")
    if len(check.issues) > 20:
        typer.echo(f"... {len(check.issues) - 20} more in {html}")
    typer.echo(f"{len(check.errors)} error(s), {len(check.warnings)} warning(s); report: {html}")
    if check.errors:
        raise SeglabError(f"data check found {len(check.errors)} error(s)", hint=f"see {html}")


@app.command()
def models(
    only: Annotated[
        str | None, typer.Option("--only", help="Comma-separated model names (default: all).")
    ] = None,
    size: Annotated[int, typer.Option("--size", min=16, max=4096, help="Input side.")] = 256,
    in_channels: Annotated[int, typer.Option("--in-channels", min=1, max=4096)] = 1,
    timing: Annotated[bool, typer.Option("--timing/--no-timing", help="Time a forward.")] = True,
) -> None:
    """Registered models with default settings: parameters, MACs and forward time.

    MACs are counted by torch.utils.flop_counter at 1 x in_channels x size x size
    (multiply-accumulates = FLOPs / 2); the forward time is the median of 3 runs
    (after one warm-up) at batch 1 on the current device (CUDA if present).
    """
    from seglab.config import ModelConfig
    from seglab.models.profile import profile_model
    from seglab.models.registry import available_models

    names = available_models()
    if only:
        wanted = [n.strip() for n in only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            raise SeglabError(
                f"unknown model in --only: {', '.join(unknown)}", hint=f"known: {', '.join(names)}"
            )
        names = wanted
    device = "cuda" if _cuda_available() else "cpu"
    table = Table(
        "model", "parameters", f"GMACs 1x{in_channels}x{size}x{size}", f"forward ms ({device})"
    )
    for name in names:
        p = profile_model(ModelConfig(name=name, in_channels=in_channels), size, device, timing)
        ms = f"{p.forward_ms:.1f}" if p.forward_ms is not None else "-"
        table.add_row(name, f"{p.parameters:,}", f"{p.macs / 1e9:.2f}", ms)
    console.print(table)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (or an evaluation folder).")],
) -> None:
    """Rewrite a run's report.html and performance_summary.csv from its folder."""
    from seglab.pipeline.reporting import report as report_pipeline

    console.print(f"report: {report_pipeline(run_dir)}")


@app.command()
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Two or more run folders.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The HTML page; comparison.csv goes beside it.")
    ] = Path("comparison.html"),
    metric: Annotated[
        str, typer.Option("--metric", help="Sort and test by: iou, dice, precision, recall.")
    ] = "iou",
) -> None:
    """Runs side by side on one test set: table, curves, CIs, paired bootstrap vs the best."""
    from seglab.pipeline.reporting import compare as compare_pipeline

    result = compare_pipeline(run_dirs, out, metric)
    table = Table("run", "model", f"test {metric}", "best − run [95% CI]")
    for row in result.rows:
        value = row[f"test_{metric}"]
        diff = row.get("paired_difference")
        paired = (
            "best"
            if diff is None
            else f"{diff:+.4f} [{row['paired_ci_low']:+.4f}, {row['paired_ci_high']:+.4f}]"
        )
        table.add_row(
            str(row["run"]), str(row["model"]), "-" if value is None else f"{value:.4f}", paired
        )
    console.print(table)
    console.print(f"comparison: {result.html} and {result.csv}")


@app.command()
def compress(
    run_dir: Annotated[Path, typer.Argument(help="A trained run folder.")],
    ranks: Annotated[
        str | None, typer.Option("--ranks", help="Fixed ranks, e.g. 16,32,64 (capped per layer).")
    ] = None,
    energies: Annotated[
        str | None,
        typer.Option("--energies", help="Energy thresholds in (0, 1], e.g. 0.95,0.9,0.85."),
    ] = None,
    ratios: Annotated[
        str | None,
        typer.Option("--ratios", help="Target fraction of each layer's weights, e.g. 0.5,0.3."),
    ] = None,
    finetune_epochs: Annotated[
        int, typer.Option("--finetune-epochs", min=0, help="Fine-tuning epochs (0: none).")
    ] = 5,
    finetune_lr: Annotated[
        float, typer.Option("--finetune-lr", min=0.0, help="Fine-tuning learning rate.")
    ] = 1e-5,
    patience: Annotated[
        int, typer.Option("--patience", min=1, help="Early-stopping patience (epochs).")
    ] = 3,
    repeats: Annotated[
        int, typer.Option("--latency-repeats", min=1, help="Timed forwards per row (median).")
    ] = 20,
    threads: Annotated[
        int | None, typer.Option("--threads", min=1, help="CPU threads for latency.")
    ] = None,
    onnx: Annotated[
        bool,
        typer.Option("--onnx/--no-onnx", help="ONNX fp32 and int8 rows (when onnx is installed)."),
    ] = True,
    control: Annotated[
        bool,
        typer.Option(
            "--control/--no-control",
            help="Also fine-tune the original the same way (what fine-tuning alone gives).",
        ),
    ] = True,
) -> None:
    """Low-rank factorisation + fine-tuning at each setting; writes <run>/compression/."""
    from seglab.compress.ranks import parse_rules
    from seglab.compress.table import text_table
    from seglab.pipeline.compression import CompressOptions, compress_run

    rules = parse_rules(ranks, energies, ratios)  # bad values fail before any work
    options = CompressOptions(
        finetune_epochs, finetune_lr, patience, repeats, threads, onnx=onnx, control=control
    )
    result = compress_run(run_dir, rules, options)
    lines = text_table(result.rows)
    table = Table(*lines[0], title=f"CPU latency: 1 image, {result.threads} thread(s)")
    for line in lines[1:]:
        table.add_row(*line)
    Console(width=max(console.width, 150)).print(table)  # the whole table, also in a log file
    console.print(f"compression folder: {result.folder}")


@app.command()
def export(
    model: Annotated[Path, typer.Argument(help="A run folder or a (compressed) model folder.")],
    format_: Annotated[str, typer.Option("--format", help="onnx | torchscript.")] = "onnx",
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for it (default: <run>/export/FORMAT).")
    ] = None,
) -> None:
    """Export a model with dynamic height and width, checked against PyTorch."""
    from seglab.pipeline.exporting import export_model

    target = export_model(model, format_, out)
    console.print(f"exported model folder: {target}")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _print_result(run_path: Path, metrics: dict | None) -> None:
    if metrics:
        d = metrics["dataset"]
        ci = metrics.get("ci95", {}).get("dataset", {}).get("iou")
        interval = f" [95% CI {ci[0]:.4f}, {ci[1]:.4f}]" if ci and None not in ci else ""
        console.print(
            f"test IoU {d['iou']:.4f}{interval}  Dice {d['dice']:.4f}  "
            f"(dataset-level, {metrics['n_images']} images)"
        )
    console.print(f"run folder: {run_path}")


class _ConsoleHandler(logging.StreamHandler):
    """Writes to ``sys.stdout`` as it is when a record comes, not as it was when the handler
    was made: one process may call ``main`` again after replacing it (pytest's capture, a
    notebook), and the old stream may be closed by then."""

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stdout

    @stream.setter
    def stream(self, value: object) -> None:
        pass  # StreamHandler.__init__ and setStream assign it: always the current stdout


def _setup_console_logging() -> None:
    logger = logging.getLogger("seglab")
    if not any(getattr(h, "_seglab_console", False) for h in logger.handlers):
        handler = _ConsoleHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._seglab_console = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    # Lightning's notices (accelerator found, tips) go to train.log, not the console
    # Lightning adds a console handler at import unless the root logger has one; it is
    # imported later (only when training), so give the root a silent handler now
    root = logging.getLogger()
    if not root.hasHandlers():
        root.addHandler(logging.NullHandler())
    lightning_logger = logging.getLogger("lightning.pytorch")
    lightning_logger.propagate = False
    for handler in list(lightning_logger.handlers):
        if type(handler) is logging.StreamHandler:
            lightning_logger.removeHandler(handler)
    warnings.filterwarnings("ignore", message=".*treespec.*LeafSpec.*")


def main(argv: list[str] | None = None) -> int:
    """Entry point: returns the exit code instead of raising."""
    try:
        app(args=argv, standalone_mode=False)
    except SeglabError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print("error: interrupted", file=sys.stderr)
        return 130
    except typer.TyperException as exc:  # bad arguments: click's usage message, exit 2
        exc.show()  # type: ignore[attr-defined]
        return 2
    except Exception as exc:  # noqa: BLE001 - anything else is our bug: say so, exit 1
        import traceback

        traceback.print_exc()
        print(f"internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
