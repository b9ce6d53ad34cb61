"""Figures for reports, returned as PNG data URIs (matplotlib, Agg backend, no torch).

Every figure made here is closed before the function returns.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

IGNORE_VALUE = 255

# RGB in [0, 1]; the HTML legend uses the same colours through ``hex_color``.
TP_COLOR = (0.10, 0.80, 0.20)  # green: predicted foreground, truly foreground
FP_COLOR = (0.95, 0.15, 0.10)  # red: predicted foreground, truly background
FN_COLOR = (0.85, 0.10, 0.85)  # magenta: missed foreground
WRONG_CLASS_COLOR = (1.00, 0.60, 0.00)  # orange: foreground, but the wrong class
IGNORE_COLOR = (0.50, 0.50, 0.50)  # grey: ignored pixels (truth == 255)
_CLASS_COLORS = np.array(
    [
        [0, 0, 0],
        [1, 1, 1],
        [0.12, 0.47, 0.71],
        [1.0, 0.5, 0.05],
        [0.17, 0.63, 0.17],
        [0.84, 0.15, 0.16],
        [0.58, 0.4, 0.74],
        [0.55, 0.34, 0.29],
        [0.89, 0.47, 0.76],
    ]
)  # class 0 black, class 1 white, then tab10-like colours (cycled)
_NO_METADATA = {"Software": None}  # keeps "https://matplotlib.org" out of the PNGs


def hex_color(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgb)


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_to_data_uri(fig: plt.Figure, dpi: int = 100) -> str:
    """Save ``fig`` as PNG, close it, and return it as a data URI."""
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata=_NO_METADATA)
    finally:
        plt.close(fig)
    return png_data_uri(buf.getvalue())


def rgb_to_data_uri(rgb: np.ndarray) -> str:
    """An (H, W, 3) float array in [0, 1] as a PNG data URI (no figure involved)."""
    buf = io.BytesIO()
    mpimg.imsave(buf, np.clip(rgb, 0.0, 1.0), format="png", metadata=_NO_METADATA)
    return png_data_uri(buf.getvalue())


# --------------------------------------------------------------------------- overlays


def as_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1) or (H, W, C>=3) to float (H, W, 3) in [0, 1] (extra channels dropped)."""
    img = np.nan_to_num(np.asarray(image, dtype=np.float64))
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    if img.ndim != 3 or img.shape[2] < 3:
        raise ValueError(f"image must be (H,W) or (H,W,3), got shape {np.shape(image)}")
    return np.clip(img[..., :3], 0.0, 1.0)


def error_colors(
    truth: np.ndarray, pred: np.ndarray, ignore_value: int = IGNORE_VALUE
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel outcome colours: (H, W, 3) RGB and an (H, W) bool mask of coloured pixels.

    True positives green, false positives red, false negatives magenta, a foreground pixel
    given the wrong foreground class orange, ignored pixels grey; true negatives uncoloured.
    """
    truth = np.asarray(truth)
    pred = np.asarray(pred)
    if truth.shape != pred.shape or truth.ndim != 2:
        raise ValueError(
            f"truth and pred must be equal (H,W) maps, got {truth.shape}, {pred.shape}"
        )
    ignored = truth == ignore_value
    t_fg = (truth > 0) & ~ignored
    p_fg = (pred > 0) & ~ignored
    rgb = np.zeros(truth.shape + (3,), dtype=np.float64)
    for mask, color in (
        (t_fg & p_fg & (truth == pred), TP_COLOR),
        (~t_fg & p_fg & ~ignored, FP_COLOR),
        (t_fg & ~p_fg, FN_COLOR),
        (t_fg & p_fg & (truth != pred), WRONG_CLASS_COLOR),
        (ignored, IGNORE_COLOR),
    ):
        rgb[mask] = color
    return rgb, t_fg | p_fg | ignored


def prediction_overlay(
    image: np.ndarray, truth: np.ndarray, pred: np.ndarray, alpha: float = 0.55
) -> np.ndarray:
    """The image with :func:`error_colors` blended on top, (H, W, 3) float in [0, 1]."""
    colors, coloured = error_colors(truth, pred)
    out = as_rgb(image).copy()
    out[coloured] = (1.0 - alpha) * out[coloured] + alpha * colors[coloured]
    return out


def mask_rgb(mask: np.ndarray, ignore_value: int = IGNORE_VALUE) -> np.ndarray:
    """A class map as RGB: 0 black, 1 white, other classes coloured, ignored pixels grey."""
    mask = np.asarray(mask)
    idx = np.where(mask == ignore_value, 0, mask).astype(np.int64)
    rgb = _CLASS_COLORS[np.where(idx > 0, (idx - 1) % (len(_CLASS_COLORS) - 1) + 1, 0)]
    rgb[mask == ignore_value] = IGNORE_COLOR
    return rgb


def shrink(array: np.ndarray, max_side: int = 512) -> np.ndarray:
    """Subsample by an integer stride so that no side exceeds ``max_side`` (keeps labels exact)."""
    step = max(1, math.ceil(max(array.shape[:2]) / max_side))
    return array[::step, ::step]


# --------------------------------------------------------------------------- learning curves


def learning_curves(
    epochs: Sequence[float],
    series: dict[str, Sequence[float]],
    best_epoch: float | None = None,
) -> str:
    """Loss, validation IoU/Dice and learning rate against epoch, as a PNG data URI.

    ``series`` maps history column names (train_loss, val_loss, val_iou, val_dice, lr) to
    floats with NaN where a value is missing; absent columns are simply not drawn.
    """
    x = np.asarray(epochs, dtype=np.float64)
    fig, axes = plt.subplots(3, 1, figsize=(7.0, 8.0), sharex=True)
    panels = (
        ("loss", (("train_loss", "train"), ("val_loss", "validation"))),
        ("validation score", (("val_iou", "IoU"), ("val_dice", "Dice"))),
        ("learning rate", (("lr", "lr"),)),
    )
    for ax, (ylabel, lines) in zip(axes, panels, strict=True):
        drawn = False
        for key, label in lines:
            y = np.asarray(series.get(key, []), dtype=np.float64)
            if y.size == x.size and np.isfinite(y).any():
                ok = np.isfinite(y)
                ax.plot(x[ok], y[ok], marker="o" if ok.sum() < 30 else None, ms=3, label=label)
                drawn = True
        if ylabel == "learning rate" and drawn:
            lr = np.asarray(series["lr"], dtype=np.float64)
            if np.nanmin(lr) > 0 and np.nanmax(lr) / np.nanmin(lr) > 20:
                ax.set_yscale("log")
        if best_epoch is not None:
            ax.axvline(best_epoch, color="0.4", ls="--", lw=1, label=f"best epoch {best_epoch:g}")
        if not drawn:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("epoch")
    fig.tight_layout()
    return figure_to_data_uri(fig)


# --------------------------------------------------------------------------- comparisons


def overlaid_curves(curves: dict[str, tuple[Sequence[float], Sequence[float]]], ylabel: str) -> str:
    """One line per run (label -> (epochs, values), NaN where missing), as a PNG data URI."""
    fig, ax = plt.subplots(figsize=(7.0, 3.8))
    drawn = False
    for label, (x, y) in curves.items():
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.any():
            ax.plot(x[ok], y[ok], marker="o" if ok.sum() < 30 else None, ms=3, label=label)
            drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return figure_to_data_uri(fig)


def bar_chart_with_errors(
    labels: Sequence[str],
    values: Sequence[float],
    lows: Sequence[float],
    highs: Sequence[float],
    ylabel: str,
) -> str:
    """Horizontal bars with their [low, high] intervals as error bars (NaN: no bar/bar only)."""
    v = np.asarray(values, dtype=np.float64)
    lo = np.asarray(lows, dtype=np.float64)
    hi = np.asarray(highs, dtype=np.float64)
    errors = np.vstack([np.nan_to_num(v - lo), np.nan_to_num(hi - v)]).clip(min=0)
    fig, ax = plt.subplots(figsize=(7.0, 0.9 + 0.45 * len(labels)))
    y = np.arange(len(labels))
    ax.barh(y, np.nan_to_num(v), xerr=errors, capsize=4, color="#4c78a8", ecolor="0.2")
    ax.set_yticks(y, labels=list(labels), fontsize=8)
    ax.invert_yaxis()  # first (best) at the top
    ax.set_xlabel(ylabel)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return figure_to_data_uri(fig)
