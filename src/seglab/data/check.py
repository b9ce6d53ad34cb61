"""``check-data``: what is wrong with a dataset, found before any training.

:func:`check_data` reads every file of the configured source and returns a
:class:`DataCheck`: the issues (errors stop a run, warnings do not), a row per
sample (size, split, label values, foreground fraction), the class balance, the
split, and thumbnails of a sample and of every flagged file for the report.
Errors: unreadable or truncated files, images without masks, size mismatches,
label values that the label settings do not allow, channel counts that do not
match ``model.in_channels``, exact duplicates in different splits. Warnings:
masks without images, grey levels in binary masks (lossy JPEG masks), less than
1% foreground, near-duplicates (perceptual hash) in different splits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seglab.config import Config
from seglab.data.dedupe import duplicate_pairs, perceptual_hash
from seglab.data.files import LOSSY_SUFFIXES, pair_files, read_array, slice_position, to_float_image
from seglab.data.labels import to_class_map, to_grey, value_range
from seglab.data.readers import finish_samples, load_samples
from seglab.data.samples import Sample
from seglab.data.split import SPLITS, make_split
from seglab.errors import SeglabError

LOW_FOREGROUND = 0.01
MAX_THUMBNAILS = 24


@dataclass
class Issue:
    severity: str  # "error" | "warning"
    file: str
    problem: str


@dataclass
class Thumbnail:
    title: str
    image: np.ndarray  # C x H x W, any scale
    mask: np.ndarray  # class map


@dataclass
class DataCheck:
    source: str
    issues: list[Issue] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    class_pixels: dict[str, int] = field(default_factory=dict)
    split: dict[str, list[str]] | None = None
    thumbnails: list[Thumbnail] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    def error(self, file: str, problem: str) -> None:
        self.issues.append(Issue("error", file, problem))

    def warn(self, file: str, problem: str) -> None:
        self.issues.append(Issue("warning", file, problem))

    def summary(self) -> dict[str, Any]:
        fractions = [r["foreground"] for r in self.rows if r["foreground"] is not None]
        sizes: dict[str, int] = {}
        for r in self.rows:
            key = f"{r['width']}x{r['height']}x{r['channels']}"
            sizes[key] = sizes.get(key, 0) + 1
        return {
            "source": self.source,
            "n_samples": len(self.rows),
            "n_errors": len(self.errors),
            "n_warnings": len(self.warnings),
            "sizes": sizes,  # "width x height x channels": count
            "split_sizes": {p: len(self.split[p]) for p in SPLITS} if self.split else None,
            "foreground_mean": float(np.mean(fractions)) if fractions else None,
            "low_foreground": sum(f < LOW_FOREGROUND for f in fractions),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": not self.errors,
            "summary": self.summary(),
            "issues": [vars(i) for i in self.issues],
            "class_pixels": self.class_pixels,
            "samples": self.rows,
            "split": self.split,
        }


def check_data(
    cfg: Config, split: dict[str, list[str]] | None = None, match_model: bool = True
) -> DataCheck:
    """Check every file and sample of ``cfg.data``; ``split`` overrides the configured one.

    ``match_model=False`` (a bare folder, no config) checks that all images have
    one channel count instead of comparing it with ``model.in_channels``.
    """
    result = DataCheck(cfg.data.source)
    flagged: set[str] = set()
    if cfg.data.source == "folder":
        samples = _scan_folder(cfg, result, flagged)
    else:
        try:
            samples = load_samples(cfg.data)
        except SeglabError as exc:
            result.error(cfg.data.root or cfg.data.source, exc.one_line())
            return result
    if not samples:
        result.error(cfg.data.root or cfg.data.source, "no readable labelled images")
        return result
    if cfg.data.source == "folder" and not result.errors:
        try:
            samples = finish_samples(cfg.data, samples)  # tiles, sorts, fills the cache
        except SeglabError as exc:
            result.error(cfg.data.root or "", exc.one_line())
    if not match_model:
        counts = [s.channels for s in samples]
        cfg = cfg.model_copy(deep=True)
        cfg.model.in_channels = max(set(counts), key=counts.count)
    _check_samples(cfg, samples, result, flagged)
    result.split = _split(cfg, samples, split, result)
    _check_duplicates(samples, result)
    part_of = {n: p for p in SPLITS for n in (result.split or {}).get(p, [])}
    for row in result.rows:
        row["split"] = part_of.get(row["name"], "")
    flagged |= {i.file for i in result.issues}
    _pick_thumbnails(samples, flagged, result)
    return result


# --------------------------------------------------------------------------- folder files


def _scan_folder(cfg: Config, result: DataCheck, flagged: set[str]) -> list[Sample]:
    d = cfg.data
    root = Path(d.root or "")
    images_dir, masks_dir = root / d.images_dir, root / d.masks_dir
    if not root.is_dir():
        result.error(str(root), "data.root: folder not found")
        return []
    for folder, key in ((images_dir, "data.images_dir"), (masks_dir, "data.masks_dir")):
        if not folder.is_dir():
            result.error(str(folder), f"{key}: folder not found")
    if result.errors:
        return []
    pairing = pair_files(images_dir, masks_dir, d.mask_pattern)
    for path in pairing.images_without_mask:
        wanted = d.mask_pattern.format(stem=path.stem)
        result.error(path.name, f"image without a mask (no {wanted}.* in {masks_dir})")
    for path in pairing.masks_without_image:
        result.warn(path.name, f"mask without an image in {images_dir}")
    samples = []
    for image_path, mask_path in pairing.pairs:
        sample = _read_checked(image_path, mask_path, cfg, result)
        if sample is not None:
            samples.append(sample)
    return samples


def _read_checked(image_path: Path, mask_path: Path, cfg: Config, result: DataCheck):  # noqa: ANN202
    arrays = []
    for path in (image_path, mask_path):
        try:
            arrays.append(read_array(path))
        except SeglabError as exc:
            result.error(path.name, f"unreadable or truncated: {exc.message.split(': ', 1)[-1]}")
    if len(arrays) < 2:
        return None
    image, mask = arrays
    if image.shape[:2] != mask.shape[:2]:
        result.error(
            mask_path.name,
            f"mask is {mask.shape[1]}x{mask.shape[0]} but image {image_path.name} is "
            f"{image.shape[1]}x{image.shape[0]} (width x height)",
        )
        return None
    _check_raw_mask(mask_path, mask, cfg, result)
    group, index = slice_position(image_path.stem)
    return Sample(
        image_path.stem, to_float_image(image), to_class_map(mask, cfg.data), group, index
    )


def _check_raw_mask(path: Path, mask: np.ndarray, cfg: Config, result: DataCheck) -> None:
    """Stored values the label settings cannot explain."""
    d = cfg.data
    if d.palette is not None:
        rgb = mask.reshape(-1, mask.shape[2])[:, :3] if mask.ndim == 3 else None
        if rgb is None:
            result.error(path.name, "grey mask but data.palette expects colour masks")
            return
        colours = np.unique(rgb, axis=0)
        unknown = [c.tolist() for c in colours if c.tolist() not in d.palette]
        if unknown:
            result.error(path.name, f"colours not in data.palette: {unknown[:5]}")
        return
    grey = to_grey(mask)
    if mask.ndim == 3 and not (mask == mask[..., :1]).all():
        result.warn(path.name, "colour mask read as grey (channel maximum); set data.palette?")
    values = _values(grey)
    if d.class_values is not None:
        unknown = sorted(set(values) - set(d.class_values))
        if unknown:
            result.error(
                path.name,
                f"mask values {unknown[:8]} are not in data.class_values (become ignore_index)",
            )
        return
    if d.mask_mode == "binary" and grey.dtype != bool:
        top = value_range(grey)
        extra = [v for v in values if v not in (0, top)]
        if extra and set(values) <= {0, 1}:
            return
        if extra:
            cut = d.mask_threshold / 255 * top
            lossy = (
                " (lossy JPEG mask; save masks as PNG)"
                if path.suffix.lower() in LOSSY_SUFFIXES
                else ""
            )
            result.warn(
                path.name,
                f"binary mask with {len(extra)} grey level(s) besides 0 and {top}, "
                f"thresholded at > {cut:g}{lossy}",
            )


def _values(array: np.ndarray) -> list[int]:
    flat = array.ravel()
    if flat.dtype == bool:
        return sorted({int(v) for v in np.unique(flat)})
    if np.issubdtype(flat.dtype, np.integer) and flat.min() >= 0 and flat.max() <= 65535:
        return np.flatnonzero(np.bincount(flat.astype(np.int64))).tolist()
    return np.unique(flat).astype(np.int64).tolist()


# --------------------------------------------------------------------------- samples


def _check_samples(
    cfg: Config, samples: list[Sample], result: DataCheck, flagged: set[str]
) -> None:
    d, m = cfg.data, cfg.model
    n_classes = max(2, m.num_classes)
    pixels = np.zeros(n_classes + 1, dtype=np.int64)  # last bin: ignored
    small = 0
    for s in samples:
        values = _values(s.mask)
        ignored = s.mask == d.ignore_index
        counts = np.bincount(
            np.where(ignored, n_classes, s.mask).ravel().clip(0, n_classes), minlength=n_classes + 1
        )
        pixels += counts[: n_classes + 1]
        bad = [v for v in values if v != d.ignore_index and not 0 <= v < n_classes]
        if bad:
            result.error(s.name, f"class values {bad[:8]} but the model has {n_classes} classes")
        labelled = int((~ignored).sum())
        fraction = float(((s.mask > 0) & ~ignored).sum() / labelled) if labelled else None
        if s.channels != m.in_channels:
            result.error(
                s.name, f"{s.channels} channel(s) but model.in_channels is {m.in_channels}"
            )
        if fraction is None:
            result.warn(s.name, "every pixel is ignore_index: nothing to learn from")
        elif fraction == 0:
            result.warn(s.name, "no foreground pixels")
        elif fraction < LOW_FOREGROUND:
            result.warn(s.name, f"foreground {100 * fraction:.2f}% (< 1%)")
        small += int(min(s.mask.shape) < d.patch_size)
        result.rows.append(
            {
                "name": s.name,
                "height": int(s.mask.shape[0]),
                "width": int(s.mask.shape[1]),
                "channels": s.channels,
                "classes": values[:16],
                "foreground": None if fraction is None else round(fraction, 6),
            }
        )
    if small:
        result.warn(
            "data.patch_size",
            f"{small} sample(s) smaller than data.patch_size ({d.patch_size}): patches are padded",
        )
    names = [f"class {c}" for c in range(n_classes)] + ["ignored"]
    result.class_pixels = {n: int(c) for n, c in zip(names, pixels, strict=True)}
    if sum(pixels[1:n_classes]) == 0:
        result.error(cfg.data.root or cfg.data.source, "no foreground pixel in any mask")


def _split(cfg: Config, samples: list[Sample], split, result: DataCheck):  # noqa: ANN001, ANN202
    if split is not None:
        return split
    try:
        return make_split(samples, cfg.data.split, cfg.seed)
    except (SeglabError, ValueError) as exc:
        message = exc.one_line() if isinstance(exc, SeglabError) else str(exc)
        result.error("data.split", message)
        return None


def _check_duplicates(samples: list[Sample], result: DataCheck) -> None:
    """One issue per file that has an exact or near copy; an error when the copy leaks."""
    part_of = {n: p for p in SPLITS for n in (result.split or {}).get(p, [])}
    digests = [hashlib.sha1(np.ascontiguousarray(s.image).tobytes()).hexdigest() for s in samples]
    hashes = np.stack([perceptual_hash(s.image) for s in samples])
    partners: dict[int, list[tuple[int, int]]] = {}
    for i, j, distance in duplicate_pairs(hashes, digests):
        partners.setdefault(i, []).append((j, distance))
        partners.setdefault(j, []).append((i, distance))
    for i, found in sorted(partners.items()):
        here = part_of.get(samples[i].name)
        leaking = [(j, d) for j, d in found if here and part_of.get(samples[j].name, here) != here]
        j, distance = min(leaking or found, key=lambda jd: jd[1])
        other = samples[j].name
        kind = "exact duplicate" if distance < 0 else f"near-duplicate (hash distance {distance})"
        more = f" and {len(found) - 1} more" if len(found) > 1 else ""
        if leaking:
            text = (
                f"{kind} of {other}{more}; {other} is in {part_of[other]}, this in {here}: leakage"
            )
            (result.error if distance < 0 else result.warn)(samples[i].name, text)
        elif distance < 0:
            result.warn(samples[i].name, f"{kind} of {other}{more} (same split)")


def _pick_thumbnails(samples: list[Sample], flagged: set[str], result: DataCheck) -> None:
    chosen = [samples[0]] + [s for s in samples[1:] if s.name in flagged]
    for s in chosen[:MAX_THUMBNAILS]:
        title = s.name if s.name in flagged else f"{s.name} (a sample)"
        result.thumbnails.append(Thumbnail(title, s.image, s.mask))
