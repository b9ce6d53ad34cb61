"""The trade-off table: one row per model variant, the original first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

COLUMNS = [
    "method",
    "setting",
    "parameters",
    "reduction_pct",
    "macs",
    "latency_ms",
    "iou_before_ft",
    "dice_before_ft",
    "iou_after_ft",
    "dice_after_ft",
    "recovery_pct",
    "layers_factorized",
    "layers_skipped",
    "finetune_epochs",
    "model_folder",
]


@dataclass
class Row:
    method: str  # original | low-rank | onnx | onnx-int8-dynamic | onnx-int8-static | torch-int8
    setting: str
    parameters: int
    macs: int | None
    latency_ms: float
    iou_before_ft: float
    dice_before_ft: float
    iou_after_ft: float | None = None  # None: no fine-tuning for this row
    dice_after_ft: float | None = None
    layers_factorized: int | None = None
    layers_skipped: int | None = None
    finetune_epochs: int | None = None
    model_folder: str = ""
    reduction_pct: float = field(default=0.0)
    recovery_pct: float = field(default=100.0)
    timer: Callable[[], Any] | None = field(default=None, repr=False)  # what latency_ms times

    @property
    def iou(self) -> float:
        """The row's final IoU: after fine-tuning where there was some."""
        return self.iou_before_ft if self.iou_after_ft is None else self.iou_after_ft

    def relative_to(self, original: Row) -> Row:
        """Fill reduction % (parameters) and recovery % (final IoU / original IoU)."""
        self.reduction_pct = 100.0 * (1.0 - self.parameters / original.parameters)
        self.recovery_pct = 100.0 * self.iou / original.iou if original.iou > 0 else float("nan")
        return self

    def to_csv(self) -> dict[str, Any]:
        return {k: _rounded(getattr(self, k)) for k in COLUMNS}


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    return "" if value is None else value


def best_compressed(rows: list[Row], min_recovery: float = 95.0) -> Row | None:
    """The low-rank row with the fewest parameters that keeps ``min_recovery`` % of the IoU,
    else the one that keeps most."""
    low_rank = [r for r in rows if r.method == "low-rank"]
    kept = [r for r in low_rank if r.recovery_pct >= min_recovery]
    if kept:
        return min(kept, key=lambda r: r.parameters)
    return max(low_rank, key=lambda r: r.recovery_pct, default=None)


def text_table(rows: list[Row]) -> list[list[str]]:
    """Header and rows as printed (and written into the report)."""
    header = [
        "method",
        "setting",
        "params",
        "reduction",
        "GMACs",
        "CPU ms",
        "IoU before FT",
        "IoU after FT",
        "Dice after FT",
        "recovery",
    ]
    lines = [header]
    for r in rows:
        lines.append(
            [
                r.method,
                r.setting,
                f"{r.parameters:,}",
                f"{r.reduction_pct:.1f}%",
                "-" if r.macs is None else f"{r.macs / 1e9:.2f}",
                f"{r.latency_ms:.1f}",
                f"{r.iou_before_ft:.4f}",
                "-" if r.iou_after_ft is None else f"{r.iou_after_ft:.4f}",
                "-" if r.dice_after_ft is None else f"{r.dice_after_ft:.4f}",
                f"{r.recovery_pct:.1f}%",
            ]
        )
    return lines
