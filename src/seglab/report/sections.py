"""Run report sections beyond config, curves and metrics: data, training facts, compression.

Each function returns plain strings and numbers for the template (jinja2 escapes
them); a missing file gives an empty section, never an error. No torch here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seglab.report import plots
from seglab.report.run_facts import number, read_optional

DATA_CHECK_FILE = "data_check.json"
COMPRESSION_DIR = "compression"
COMPRESSION_SUMMARY = "summary.csv"
COMPRESSION_NOTES = "table.json"  # written by seglab compress: {"table": ..., "notes": {...}}
MAX_COMPRESSION_PLOTS = 12
MAX_PLOT_BYTES = 5_000_000


def data_summary_section(run_dir: Path) -> dict[str, Any]:
    """Rows from the data check that ran before training (data_check.json)."""
    check = read_optional(run_dir / DATA_CHECK_FILE)
    summary = check.get("summary") if isinstance(check, dict) else None
    if not isinstance(summary, dict):
        return {"rows": [], "problem": f"{DATA_CHECK_FILE} not found or unreadable"}
    rows: list[tuple[str, str]] = [
        ("source", str(summary.get("source", "—"))),
        ("samples", str(summary.get("n_samples", "—"))),
    ]
    sizes = summary.get("sizes")
    if isinstance(sizes, dict):
        shown = ", ".join(f"{k}: {v}" for k, v in list(sizes.items())[:6])
        more = f" (+{len(sizes) - 6} more)" if len(sizes) > 6 else ""
        rows.append(("sizes (W x H x C: count)", shown + more))
    split = summary.get("split_sizes")
    if isinstance(split, dict):
        rows.append(("split", ", ".join(f"{k} {v}" for k, v in split.items())))
    fg = number(summary.get("foreground_mean"))
    if fg is not None:
        rows.append(("mean foreground per sample", f"{100 * fg:.2f}%"))
    classes = check.get("class_pixels")
    if isinstance(classes, dict):
        total = sum(v for v in classes.values() if isinstance(v, (int, float))) or 1
        rows.append(
            (
                "class pixels",
                ", ".join(
                    f"{k} {100 * v / total:.1f}%"
                    for k, v in classes.items()
                    if isinstance(v, (int, float))
                ),
            )
        )
    rows.append(
        ("errors / warnings", f"{summary.get('n_errors', '—')} / {summary.get('n_warnings', '—')}")
    )
    return {"rows": rows, "problem": None}


def facts_rows(facts: dict[str, Any]) -> list[tuple[str, str]]:
    """The training facts of :func:`run_facts` as (label, text) rows."""
    rows = []
    if facts.get("parameters") is not None:
        rows.append(("parameters", f"{int(facts['parameters']):,}"))
    if facts.get("gmacs") is not None:
        rows.append((f"GMACs ({facts.get('macs_input') or 'one input'})", f"{facts['gmacs']:.3f}"))
    if facts.get("seconds_per_epoch") is not None:
        rows.append(("time per epoch (mean)", f"{facts['seconds_per_epoch']:.2f} s"))
    if facts.get("peak_memory_mb") is not None:
        memory = f"{facts['peak_memory_mb']:,.0f} MB"
        rows.append((f"peak memory ({facts['peak_memory_kind']})", memory))
    if facts.get("stability_std") is not None:
        rows.append(
            (
                f"stability: std of {facts['monitor']}, last {facts['stability_epochs']} epochs",
                f"{facts['stability_std']:.4f}",
            )
        )
    if facts.get("gap_iou") is not None:
        rows.append(
            (
                "generalisation gap: train − val IoU of the kept weights",
                f"{facts['gap_iou']:+.4f} ({facts['train_iou']:.4f} − {facts['val_iou']:.4f})",
            )
        )
    return rows


def loss_gap(history: list[dict[str, Any]], best_epoch: Any) -> str | None:
    """Validation minus training loss at the best epoch, as text."""
    for row in history:
        if number(row.get("epoch")) == number(best_epoch):
            train, val = number(row.get("train_loss")), number(row.get("val_loss"))
            if train is not None and val is not None:
                return f"{val - train:+.4f} ({val:.4f} − {train:.4f})"
    return None


def compression_section(run_dir: Path) -> dict[str, Any] | None:
    """compression/summary.csv as a table (whatever its columns) and compression/*.png."""
    folder = run_dir / COMPRESSION_DIR
    if not folder.is_dir():
        return None
    rows = read_optional(folder / COMPRESSION_SUMMARY)
    table: list[list[str]] = []
    columns: list[str] = []
    if isinstance(rows, list) and rows:
        columns = list(rows[0])
        table = [[_cell(r.get(c)) for c in columns] for r in rows]
    images = []
    for png in sorted(folder.glob("*.png"))[:MAX_COMPRESSION_PLOTS]:
        data = png.read_bytes()
        if len(data) <= MAX_PLOT_BYTES and data.startswith(b"\x89PNG"):
            images.append({"name": png.name, "uri": plots.png_data_uri(data)})
    notes = read_optional(folder / COMPRESSION_NOTES)  # how the table was measured
    notes = list(notes.get("notes", {}).items()) if isinstance(notes, dict) else []
    if not table and not images:
        return {
            "columns": [],
            "rows": [],
            "images": [],
            "notes": notes,
            "problem": "no summary.csv or plots",
        }
    return {"columns": columns, "rows": table, "images": images, "notes": notes, "problem": None}


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "—"
    parsed = number(value)
    if parsed is None:
        return str(value)
    if parsed.is_integer() and abs(parsed) < 1e15:
        return f"{int(parsed):,}"
    return f"{parsed:.4g}"
