"""The data-check report: ``data_check.json`` and a self-contained ``data_check.html``."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import jinja2
import matplotlib.pyplot as plt
import numpy as np

from seglab.data.check import LOW_FOREGROUND, DataCheck, Thumbnail
from seglab.report import plots
from seglab.runs import atomic_write_json, atomic_write_text

JSON_FILE = "data_check.json"
HTML_FILE = "data_check.html"
_TEMPLATES = Path(__file__).parent / "templates"
THUMB_SIDE = 256
OVERLAY_COLOR = np.array([0.95, 0.15, 0.10])


def write_data_check(check: DataCheck, out_dir: str | Path, title: str = "") -> Path:
    """Write data_check.json and data_check.html into ``out_dir``; return the HTML path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = check.to_json()
    atomic_write_json(out_dir / JSON_FILE, payload)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    html = env.get_template("data_check.html.j2").render(
        title=title or check.source,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        summary=payload["summary"],
        issues=payload["issues"],
        class_pixels=payload["class_pixels"],
        rows=payload["samples"],
        histogram=_histogram([r["foreground"] for r in check.rows]),
        thumbnails=[_thumbnail(t) for t in check.thumbnails],
        low=100 * LOW_FOREGROUND,
    )
    return atomic_write_text(out_dir / HTML_FILE, html)


def _histogram(fractions: list[float | None]) -> str | None:
    values = [100 * f for f in fractions if f is not None]
    if not values:
        return None
    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.hist(values, bins=min(40, max(5, len(values) // 3)), color="#4a78b5")
    ax.axvline(100 * LOW_FOREGROUND, color="#c0392b", linestyle="--", linewidth=1)
    ax.set_xlabel("foreground per sample (%)")
    ax.set_ylabel("samples")
    return plots.figure_to_data_uri(fig)


def display_image(image: np.ndarray) -> np.ndarray:
    """C x H x W of any scale as (H, W, 3) in [0, 1]: grey, RGB, or the band mean of a cube."""
    shown = image[:3] if image.shape[0] == 3 else image.mean(axis=0, keepdims=True)
    shown = np.moveaxis(shown, 0, -1).astype(np.float64)
    low, high = np.percentile(shown, (1, 99))
    return plots.as_rgb((shown - low) / (high - low) if high > low else shown * 0)


def _thumbnail(t: Thumbnail) -> dict[str, str]:
    image = display_image(plots.shrink(np.moveaxis(t.image, 0, -1), THUMB_SIDE).transpose(2, 0, 1))
    mask = plots.shrink(t.mask, THUMB_SIDE)
    overlay = image.copy()
    fg = (mask > 0) & (mask != plots.IGNORE_VALUE)
    overlay[fg] = 0.5 * overlay[fg] + 0.5 * OVERLAY_COLOR
    return {
        "title": t.title,
        "image": plots.rgb_to_data_uri(image),
        "mask": plots.rgb_to_data_uri(plots.mask_rgb(mask)),
        "overlay": plots.rgb_to_data_uri(overlay),
    }
