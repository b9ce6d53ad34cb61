"""Readers: where the labelled images come from (``data.source``).

Each reader turns a :class:`DataConfig` into a list of :class:`Sample`; masks go
through :func:`seglab.data.labels.to_class_map`. ``data.tile_size`` cuts every
sample into tiles afterwards (a few large scenes become enough samples to split),
and decoded samples are kept in memory for the process (``data.cache``), so
check-data, training and testing in one ``seglab run`` decode each file once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from seglab.config import DataConfig
from seglab.data.files import (
    IMAGE_SUFFIXES,
    pair_files,
    read_array,
    slice_position,
    to_float_image,
)
from seglab.data.labels import to_class_map
from seglab.data.samples import Sample
from seglab.data.synthetic import generate
from seglab.errors import SeglabError

Reader = Callable[[DataConfig], list[Sample]]
_READERS: dict[str, Reader] = {}
_CACHE: dict[str, list[Sample]] = {}
_NOT_READER_KEYS = (
    "split",
    "normalize",
    "patch_size",
    "patches_per_epoch",
    "foreground_oversample",
    "augment",
    "check_before_run",
)


def register_reader(name: str) -> Callable[[Reader], Reader]:
    def decorator(reader: Reader) -> Reader:
        _READERS[name] = reader
        return reader

    return decorator


def load_samples(cfg: DataConfig) -> list[Sample]:
    """All labelled samples of the configured source (tiled if asked), sorted by name."""
    cached = _CACHE.get(_cache_key(cfg)) if cfg.cache else None
    if cached is not None:
        return list(cached)
    return finish_samples(cfg, _READERS[cfg.source](cfg))


def finish_samples(cfg: DataConfig, samples: list[Sample]) -> list[Sample]:
    """Tile, sort and (with ``data.cache``) remember samples that a reader produced."""
    if cfg.tile_size:
        samples = [tile for s in samples for tile in tiles(s, cfg.tile_size)]
    if len(samples) < 3:
        raise SeglabError(
            f"data has {len(samples)} labelled image(s); train, val and test need at least 3",
            hint="add images, or set data.tile_size to cut large images into tiles",
        )
    samples = sorted(samples, key=lambda s: s.name)
    _CACHE.clear()  # one dataset at a time: the cache must not hold several in memory
    if cfg.cache:
        _CACHE[_cache_key(cfg)] = samples
    return list(samples)


def _cache_key(cfg: DataConfig) -> str:
    return json.dumps(cfg.model_dump(mode="json", exclude=set(_NOT_READER_KEYS)), sort_keys=True)


def clear_cache() -> None:
    _CACHE.clear()


def tiles(sample: Sample, size: int) -> list[Sample]:
    """Non-overlapping tiles of about ``size`` px (the remainder is shared out, not dropped)."""
    height, width = sample.mask.shape
    rows = np.linspace(0, height, max(1, height // size) + 1).round().astype(int)
    cols = np.linspace(0, width, max(1, width // size) + 1).round().astype(int)
    out = []
    for r, (top, bottom) in enumerate(zip(rows[:-1], rows[1:], strict=True)):
        for c, (left, right) in enumerate(zip(cols[:-1], cols[1:], strict=True)):
            out.append(
                Sample(
                    f"{sample.name}_r{r}c{c}",
                    sample.image[:, top:bottom, left:right],
                    sample.mask[top:bottom, left:right],
                    group=sample.name,
                    index=r * (len(cols) - 1) + c,
                )
            )
    return out


@register_reader("synthetic")
def read_synthetic(cfg: DataConfig) -> list[Sample]:
    s = cfg.synthetic
    return [
        Sample(name, image[None].astype(np.float32), mask.astype(np.int64), s.kind, i)
        for i, (name, image, mask) in enumerate(
            generate(s.kind, s.n_images, s.height, s.width, seed=s.seed)
        )
    ]


def _folder(root: Path, sub: str, key: str) -> Path:
    folder = root / sub
    if not folder.is_dir():
        raise SeglabError(f"{key}: folder not found: {folder}", hint="check the path")
    return folder


@register_reader("folder")
def read_folder(cfg: DataConfig) -> list[Sample]:
    root = Path(cfg.root or "")
    _folder(root, ".", "data.root")
    images_dir = _folder(root, cfg.images_dir, "data.images_dir")
    masks_dir = _folder(root, cfg.masks_dir, "data.masks_dir")
    pairing = pair_files(images_dir, masks_dir, cfg.mask_pattern)
    if pairing.images_without_mask:
        path = pairing.images_without_mask[0]
        raise SeglabError(
            f"no mask for image {path.name} in {masks_dir} "
            f"(looked for {cfg.mask_pattern.format(stem=path.stem)}.*)",
            hint="add the mask, remove the image, or set data.mask_pattern",
        )
    samples = [read_pair(image, mask, cfg) for image, mask in pairing.pairs]
    if not samples:
        raise SeglabError(
            f"no images in {images_dir}", hint=f"supported: {', '.join(IMAGE_SUFFIXES)}"
        )
    return samples


def read_pair(image_path: Path, mask_path: Path, cfg: DataConfig) -> Sample:
    image = to_float_image(read_array(image_path))
    mask = to_class_map(read_array(mask_path), cfg)
    if image.shape[1:] != mask.shape:
        raise SeglabError(
            f"mask {mask_path.name} is {mask.shape[1]}x{mask.shape[0]} but image "
            f"{image_path.name} is {image.shape[2]}x{image.shape[1]} (width x height)",
            hint="masks must have the size of their image",
        )
    group, index = slice_position(image_path.stem)
    return Sample(image_path.stem, image, mask, group, index)


@register_reader("tiff_stack")
def read_tiff_stack(cfg: DataConfig) -> list[Sample]:
    """One sample per slice of ``root/image_stack`` and ``root/mask_stack``."""
    root = Path(cfg.root or "")
    paths = {key: root / getattr(cfg, key) for key in ("image_stack", "mask_stack")}
    for key, path in paths.items():
        if not path.is_file():
            raise SeglabError(f"data.{key}: file not found: {path}", hint="check the path")
    images, masks = (_stack(read_array(p)) for p in paths.values())
    if images.shape[0] != masks.shape[0] or images.shape[1:3] != masks.shape[1:3]:
        raise SeglabError(
            f"{paths['mask_stack'].name} has shape {masks.shape[:3]} but "
            f"{paths['image_stack'].name} has {images.shape[:3]} (slices, height, width)",
            hint="the label stack must match the image stack slice for slice",
        )
    stem = paths["image_stack"].stem
    return [
        Sample(f"{stem}_{z:04d}", to_float_image(images[z]), to_class_map(masks[z], cfg), stem, z)
        for z in range(images.shape[0])
    ]


def _stack(array: np.ndarray) -> np.ndarray:
    return array[None] if array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3) else array


@register_reader("cube")
def read_cube(cfg: DataConfig) -> list[Sample]:
    """Hyperspectral cubes (H x W x bands) with label maps, from .npz or .mat files."""
    root = Path(cfg.root or "")
    _folder(root, ".", "data.root")
    files = sorted(p for p in root.glob(cfg.cube_glob) if p.is_file())
    if not files:
        raise SeglabError(f"data.cube_glob: no {cfg.cube_glob} files in {root}")
    return [read_cube_file(p, cfg) for p in files]


def read_cube_file(path: Path, cfg: DataConfig) -> Sample:
    arrays = _load_arrays(path)
    for key in (cfg.cube_key, cfg.cube_label_key):
        if key not in arrays:
            known = ", ".join(k for k in arrays if not k.startswith("__"))
            raise SeglabError(
                f"{path.name}: no array {key!r} (it has: {known})",
                hint="set data.cube_key and data.cube_label_key",
            )
    cube, labels = np.asarray(arrays[cfg.cube_key]), np.asarray(arrays[cfg.cube_label_key])
    if cube.ndim != 3 or cube.shape[:2] != labels.shape[:2]:
        raise SeglabError(
            f"{path.name}: cube {cube.shape} and labels {labels.shape} do not match as "
            "H x W x bands and H x W",
            hint="cubes must be stored height x width x bands",
        )
    if cfg.cube_bands is not None:
        if cube.shape[2] < cfg.cube_bands:
            raise SeglabError(
                f"{path.name} has {cube.shape[2]} bands, fewer than data.cube_bands "
                f"({cfg.cube_bands})",
                hint="lower data.cube_bands",
            )
        cube = cube[:, :, : cfg.cube_bands]
    image = np.ascontiguousarray(cube.transpose(2, 0, 1), dtype=np.float32)
    return Sample(path.stem, image, to_class_map(labels, cfg), path.stem, 0)


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        if path.suffix.lower() == ".npy":
            raise SeglabError(f"{path.name}: .npy holds one array; cubes need image and labels")
        from scipy.io import loadmat

        return loadmat(path)
    except SeglabError:
        raise
    except NotImplementedError:
        raise SeglabError(
            f"{path.name}: MATLAB v7.3 (HDF5) files are not supported",
            hint="re-save it with save(..., '-v7') or as .npz",
        ) from None
    except Exception as exc:  # noqa: BLE001 - numpy/scipy raise many types for bad files
        raise SeglabError(f"cannot read cube {path}: {exc}", hint="replace or remove it") from None
