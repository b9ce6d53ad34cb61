"""Decoding image and mask files, and pairing images with their masks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from seglab.errors import SeglabError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif")
LOSSY_SUFFIXES = (".jpg", ".jpeg")


@dataclass
class Pairing:
    """Images matched with their masks, and what could not be matched."""

    pairs: list[tuple[Path, Path]] = field(default_factory=list)
    images_without_mask: list[Path] = field(default_factory=list)
    masks_without_image: list[Path] = field(default_factory=list)


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def pair_files(images_dir: Path, masks_dir: Path, pattern: str = "{stem}") -> Pairing:
    """Match ``images_dir/<stem>.*`` with ``masks_dir/<pattern with stem>.*``.

    A pattern with an image suffix (``{stem}_mask.png``) must match the file
    name exactly; without one (``{stem}_mask``) any image suffix will do.
    """
    masks = image_files(masks_dir)
    by_name = {p.name: p for p in masks}
    by_stem = {p.stem: p for p in masks}
    exact = Path(pattern).suffix.lower() in IMAGE_SUFFIXES
    pairing, used = Pairing(), set()
    for path in image_files(images_dir):
        if path in by_name.values() and images_dir.resolve() == masks_dir.resolve():
            continue  # images and masks share a folder: masks are not images
        wanted = pattern.format(stem=path.stem)
        mask = by_name.get(wanted) if exact else by_stem.get(wanted)
        if mask is None or mask == path:
            pairing.images_without_mask.append(path)
            continue
        used.add(mask)
        pairing.pairs.append((path, mask))
    if images_dir.resolve() != masks_dir.resolve():
        pairing.masks_without_image = [p for p in masks if p not in used]
    return pairing


def read_array(path: Path) -> np.ndarray:
    """A decoded file as stored: H x W (grey, bool for 1-bit) or H x W x C."""
    if path.suffix.lower() in (".tif", ".tiff"):
        return _read_tiff(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode == "P":
                img = img.convert("RGB")
            elif img.mode in ("PA", "RGBA", "CMYK", "YCbCr"):
                img = img.convert("RGB")
            elif img.mode == "LA":
                img = img.convert("L")
            return np.asarray(img)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise SeglabError(f"cannot read image {path}: {exc}", hint="replace or remove it") from None


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        array = tifffile.imread(path)
    except Exception as exc:  # noqa: BLE001 - tifffile raises many types for broken files
        raise SeglabError(f"cannot read image {path}: {exc}", hint="replace or remove it") from None
    if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[2] not in (3, 4):
        array = np.moveaxis(array, 0, -1)  # planar RGB
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[..., :3]
    return array


def to_float_image(array: np.ndarray) -> np.ndarray:
    """An image as float32 C x H x W scaled to [0, 1] by its bit depth."""
    if array.dtype == bool:
        scaled = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.integer):
        scaled = array.astype(np.float32) / float(np.iinfo(array.dtype).max)
    else:
        scaled = array.astype(np.float32)
        top = float(scaled.max()) if scaled.size else 1.0
        scaled = scaled / top if top > 1.0 else scaled
    return scaled[None] if scaled.ndim == 2 else np.ascontiguousarray(scaled.transpose(2, 0, 1))


_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)$")


def slice_position(stem: str) -> tuple[str, int]:
    """(volume, slice number) from a name such as ``train_017`` -> (``train_``, 17)."""
    match = _TRAILING_NUMBER.match(stem)
    return (match.group(1), int(match.group(2))) if match else (stem, 0)


def read_image(path: Path) -> np.ndarray:
    """An image file as float32 C x H x W in [0, 1], decoded as training decodes it."""
    return to_float_image(read_array(Path(path)))
