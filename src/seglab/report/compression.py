"""The compression trade-off: a plot (parameters and latency vs IoU) and an HTML page."""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from seglab.report.plots import figure_to_data_uri  # noqa: E402
from seglab.runs import (  # noqa: E402
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
)

PLOT_FILE = "tradeoff.png"
REPORT_FILE = "report.html"
TABLE_FILE = "table.json"  # the printed table and how it was measured, for the run report
COMPRESSION_DIR = "compression"


def tradeoff_figure(rows: list[dict[str, Any]]) -> plt.Figure:
    """IoU against parameters and against CPU latency; the original is the reference star."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in (
        (axes[0], "parameters", "parameters"),
        (axes[1], "latency_ms", "CPU latency (ms)"),
    ):
        for row in rows:
            iou = row["iou_after_ft"] if row["iou_after_ft"] != "" else row["iou_before_ft"]
            original = row["method"] == "original"
            ax.scatter(
                float(row[key]),
                float(iou),
                marker="*" if original else "o",
                s=160 if original else 40,
                color="black" if original else None,
                zorder=4 if original else 3,
            )
            name = "original" if original else f"{row['method']} {row['setting']}"
            ax.annotate(
                name,
                (float(row[key]), float(iou)),
                fontsize=7,
                xytext=(4, 3),
                textcoords="offset points",
            )
        ax.set_xlabel(label)
        ax.set_ylabel("test IoU")
        ax.grid(alpha=0.3)
    axes[0].set_xscale("log")
    fig.tight_layout()
    return fig


def write_compression_report(
    folder: Path, table: list[list[str]], rows: list[dict[str, Any]], notes: dict[str, str]
) -> Path:
    """``tradeoff.png`` and ``report.html`` (the table, how it was measured, the plot)."""
    fig = tradeoff_figure(rows)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(folder / PLOT_FILE, buffer.getvalue())
    atomic_write_json(folder / TABLE_FILE, {"table": table, "notes": notes})
    uri = figure_to_data_uri(fig)
    plt.close(fig)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in line) + "</tr>" for line in table[1:]
    )
    items = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in notes.items())
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>compression</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;"
        "border-bottom:1px solid #ddd;text-align:right}</style></head><body>"
        "<h2>Compression</h2><p>Low-rank factorisation (truncated SVD, each layer split "
        "into a k x k and a 1 x 1 layer) with fine-tuning, and int8 / ONNX deployment "
        "variants. Recovery = final test IoU / original test IoU.</p>"
        f"<ul>{items}</ul><table><tr>{head}</tr>{body}</table>"
        f"<img src='{uri}' alt='trade-off plot'></body></html>"
    )
    return atomic_write_text(folder / REPORT_FILE, page)
