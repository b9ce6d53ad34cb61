"""Readers: where the labelled images come from (``data.source``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from seglab.config import DataConfig
from seglab.data.samples import Sample
from seglab.data.synthetic import generate
from seglab.errors import SeglabError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif")

Reader = Callable[[DataConfig], list[Sample]]
_READERS: dict[str, Reader] = {}


def register_reader(name: str) -> Callable[[Reader], Reader]:
    def decorator(reader: Reader) -> Reader:
        _READERS[name] = reader
        return reader

    return decorator


def load_samples(cfg: DataConfig) -> list[Sample]:
    """All labelled samples of the configured source, sorted by name."""
    samples = _READERS[cfg.source](cfg)
    if len(samples) < 3:
        raise SeglabError(
            f"data has {len(samples)} labelled image(s); train, val and test need at least 3",
            hint="add images or use data.source: synthetic",
        )
    return sorted(samples, key=lambda s: s.name)


@register_reader("synthetic")
def read_synthetic(cfg: DataConfig) -> list[Sample]:
    s = cfg.synthetic
    return [
        Sample(name, image[None].astype(np.float32), mask.astype(np.int64))
        for name, image, mask in generate(s.kind, s.n_images, s.height, s.width, seed=s.seed)
    ]


@register_reader("folder")
def read_folder(cfg: DataConfig) -> list[Sample]:
    root = Path(cfg.root or "")
    images_dir, masks_dir = root / cfg.images_dir, root / cfg.masks_dir
    for folder, key in (
        (root, "data.root"),
        (images_dir, "data.images_dir"),
        (masks_dir, "data.masks_dir"),
    ):
        if not folder.is_dir():
            raise SeglabError(f"{key}: folder not found: {folder}", hint="check the path")
    masks = {p.stem: p for p in _image_files(masks_dir)}
    samples = []
    for path in _image_files(images_dir):
        mask_path = masks.get(path.stem)
        if mask_path is None:
            raise SeglabError(
                f"no mask for image {path.name} in {masks_dir}",
                hint=f"add {masks_dir / path.stem}.png or remove the image",
            )
        image = read_image(path)
        mask = read_mask(mask_path, cfg.mask_threshold)
        if image.shape[1:] != mask.shape:
            raise SeglabError(
                f"mask {mask_path.name} is {mask.shape[1]}x{mask.shape[0]} but image "
                f"{path.name} is {image.shape[2]}x{image.shape[1]} (width x height)",
                hint="masks must have the size of their image",
            )
        samples.append(Sample(path.stem, image, mask))
    if not samples:
        raise SeglabError(
            f"no images in {images_dir}", hint=f"supported: {', '.join(IMAGE_SUFFIXES)}"
        )
    return samples


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _open(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("P", "PA", "LA", "RGBA", "CMYK", "YCbCr"):
                img = img.convert("RGB" if img.mode not in ("LA",) else "L")
            return np.asarray(img)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise SeglabError(f"cannot read image {path}: {exc}", hint="replace or remove it") from None


def read_image(path: Path) -> np.ndarray:
    """An image as float32 C x H x W scaled to [0, 1] by its bit depth."""
    array = _open(path)
    if array.dtype == bool:
        scaled = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.integer):
        scaled = array.astype(np.float32) / float(np.iinfo(array.dtype).max)
    else:
        scaled = array.astype(np.float32)
        top = float(scaled.max()) if scaled.size else 1.0
        scaled = scaled / top if top > 1.0 else scaled
    return scaled[None] if scaled.ndim == 2 else np.ascontiguousarray(scaled.transpose(2, 0, 1))


def read_mask(path: Path, threshold: int) -> np.ndarray:
    """A binary mask (int64, H x W): pixels above ``threshold`` are foreground."""
    array = _open(path)
    if array.ndim == 3:
        array = array.max(axis=2)
    if array.dtype == bool:
        return array.astype(np.int64)
    return (array > threshold).astype(np.int64)
