"""Inputs and outputs of ``seglab predict``: image files, folders and TIFF stacks.

An input is an image file (PNG, JPG, TIFF, BMP...), a folder of them (not
recursive), or a multi-page TIFF (a stack, predicted slice by slice). Outputs are
named after the input's stem: ``<stem>.png`` (or ``.tif`` for TIFF inputs) holds the
mask (binary: 0/255; multi-class: the class index), ``<stem>_prob.tif`` the
probabilities (float32), ``<stem>_overlay.png`` (``.tif`` for stacks) the mask
tinted over the image.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from seglab.data.files import IMAGE_SUFFIXES, read_image
from seglab.errors import SeglabError
from seglab.runs import atomic_write_bytes

TIFF_SUFFIXES = (".tif", ".tiff")
PALETTE = np.array(
    [[0, 0, 0], [255, 64, 64], [64, 200, 64], [64, 128, 255], [255, 200, 0], [200, 64, 255]],
    dtype=np.float32,
)


@dataclass
class InputImage:
    path: Path
    image: np.ndarray  # (Z, C, H, W) float32 in [0, 1]; Z = 1 for a plain image
    is_stack: bool


def collect_inputs(paths: list[Path]) -> list[Path]:
    """Image files named directly or found in the named folders, in order, each once."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            files = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not files:
                raise SeglabError(
                    f"no images in folder {path}", hint=f"supported: {', '.join(IMAGE_SUFFIXES)}"
                )
            found += files
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise SeglabError(
                    f"{path}: not a supported image file",
                    hint=f"supported: {', '.join(IMAGE_SUFFIXES)}",
                )
            found.append(path)
        else:
            raise SeglabError(f"input not found: {path}", hint="check the path")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    stems: dict[str, Path] = {}
    for p in unique:
        if p.stem in stems:
            raise SeglabError(
                f"two inputs share the name {p.stem!r}: {stems[p.stem]} and {p}",
                hint="outputs are named after the input; predict them into different --out folders",
            )
        stems[p.stem] = p
    return unique


def read_input(path: Path, in_channels: int) -> InputImage:
    """An image or a stack as (Z, C, H, W) in [0, 1], with ``in_channels`` channels."""
    if path.suffix.lower() in TIFF_SUFFIXES:
        slices, is_stack = _read_tiff(path, in_channels)
        image = np.stack([_match_channels(s, in_channels, path) for s in _to_unit(slices)])
        return InputImage(path, image, is_stack)
    image = _match_channels(read_image(path), in_channels, path)
    return InputImage(path, image[None], False)


def _read_tiff(path: Path, in_channels: int) -> tuple[np.ndarray, bool]:
    """A TIFF as (Z, C, H, W) and whether it is a stack of slices."""
    try:
        array = tifffile.imread(path)
    except (OSError, ValueError, tifffile.TiffFileError) as exc:
        raise SeglabError(f"cannot read TIFF {path}: {exc}", hint="replace or remove it") from None
    if array.ndim == 2:
        return array[None, None], False
    if array.ndim == 3:
        if in_channels > 1 and array.shape[0] == in_channels:
            return array[None], False  # C, H, W
        if array.shape[-1] in (in_channels, 3, 4) and array.shape[-1] <= 4:
            return np.moveaxis(array, -1, 0)[None], False  # H, W, C (e.g. RGB)
        return array[:, None], True  # Z, H, W
    if array.ndim == 4:
        if array.shape[-1] == in_channels and array.shape[1] != in_channels:
            return np.moveaxis(array, -1, 1), True  # Z, H, W, C
        return array, True  # Z, C, H, W
    raise SeglabError(
        f"{path}: a TIFF of shape {array.shape} is neither an image nor a stack of slices",
        hint="save it as (slices, height, width) or (slices, channels, height, width)",
    )


def _to_unit(array: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by the bit depth (integers) or the maximum (floats above 1)."""
    if array.dtype == bool:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.float32) / float(np.iinfo(array.dtype).max)
    scaled = array.astype(np.float32)
    top = float(scaled.max()) if scaled.size else 1.0
    return scaled / top if top > 1.0 else scaled


def _match_channels(image: np.ndarray, in_channels: int, path: Path) -> np.ndarray:
    """(C, H, W) with the model's channel count: grey-looking RGB to grey, grey to RGB."""
    channels = image.shape[0]
    if channels == in_channels:
        return image
    if in_channels == 1 and channels in (3, 4) and np.allclose(image[0], image[1:3]):
        return image[:1]
    if in_channels == 3 and channels == 1:
        return np.repeat(image, 3, axis=0)
    if in_channels == 3 and channels == 4:
        return image[:3]
    raise SeglabError(
        f"{path}: the image has {channels} channel(s) but the model expects {in_channels}",
        hint="convert the images to the model's channel count",
    )


# --------------------------------------------------------------------------- outputs


def mask_pixels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """uint8 mask pixels: binary 0/255, multi-class the class index."""
    if num_classes == 1:
        return (labels > 0).astype(np.uint8) * 255
    return labels.astype(np.uint8 if num_classes <= 256 else np.uint16)


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8 (H, W, 3): the image in grey (or its first 3 channels), classes tinted."""
    rgb = np.repeat(image[:1], 3, axis=0) if image.shape[0] != 3 else image[:3]
    rgb = np.moveaxis(rgb, 0, -1) * 255.0
    colors = PALETTE[1 + (labels - 1) % (len(PALETTE) - 1)]
    tinted = np.where((labels > 0)[..., None], (1 - alpha) * rgb + alpha * colors, rgb)
    return np.clip(tinted, 0, 255).astype(np.uint8)


def write_png(path: Path, pixels: np.ndarray) -> Path:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


def write_tiff(path: Path, array: np.ndarray) -> Path:
    buf = io.BytesIO()
    photometric = "rgb" if array.ndim >= 3 and array.shape[-1] == 3 else "minisblack"
    tifffile.imwrite(buf, array, photometric=photometric)
    return atomic_write_bytes(path, buf.getvalue())


def write_prediction(
    source: InputImage,
    out_dir: Path,
    labels: np.ndarray,
    probs: np.ndarray | None,
    num_classes: int,
    with_overlay: bool,
) -> list[Path]:
    """Write the mask (and optionally probabilities and overlay) of one input.

    ``labels`` is (Z, H, W) and ``probs`` (Z, K, H, W); a plain image has Z = 1.
    """
    stem = source.path.stem
    tiff_input = source.path.suffix.lower() in TIFF_SUFFIXES
    mask = mask_pixels(labels, num_classes)
    mask_path = out_dir / f"{stem}{'.tif' if tiff_input else '.png'}"
    if mask_path.resolve() == source.path.resolve():
        raise SeglabError(
            f"the mask of {source.path} would overwrite it", hint="pass another --out folder"
        )
    written = [
        write_tiff(mask_path, mask if source.is_stack else mask[0])
        if tiff_input
        else write_png(mask_path, mask[0])
    ]
    if probs is not None:
        p = probs[:, 0] if num_classes == 1 else probs
        written.append(write_tiff(out_dir / f"{stem}_prob.tif", p if source.is_stack else p[0]))
    if with_overlay:
        pairs = zip(source.image, labels, strict=True)
        tinted = np.stack([overlay(img, lab) for img, lab in pairs])
        if source.is_stack:
            written.append(write_tiff(out_dir / f"{stem}_overlay.tif", tinted))
        else:
            written.append(write_png(out_dir / f"{stem}_overlay.png", tinted[0]))
    return written
