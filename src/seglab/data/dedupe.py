"""Exact and near-duplicate images: SHA-1 of the pixels and a 256-bit difference hash.

The threshold was set on the real datasets: unrelated DRIVE fundus photographs
(which all look alike) are >= 27 bits apart, neighbouring Lucchi EM slices ~8.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

NEAR_DUPLICATE_BITS = 10  # difference hashes this close (of 256 bits) are near-duplicates
HASH_SIDE = 16


def perceptual_hash(image: np.ndarray) -> np.ndarray:
    """256 bits (bool): is each pixel of a 17 x 16 thumbnail brighter than its right neighbour."""
    grey = image.mean(axis=0) if image.ndim == 3 else image
    low, high = float(grey.min()), float(grey.max())
    scaled = ((grey - low) / (high - low) * 255 if high > low else grey * 0).astype(np.uint8)
    small = np.asarray(
        Image.fromarray(scaled).resize((HASH_SIDE + 1, HASH_SIDE), Image.Resampling.BOX),
        dtype=np.int16,
    )
    return (small[:, 1:] > small[:, :-1]).ravel()


def duplicate_pairs(
    hashes: np.ndarray, digests: list[str], max_bits: int = NEAR_DUPLICATE_BITS
) -> list[tuple[int, int, int]]:
    """(i, j, distance) for i < j with equal ``digests`` (distance -1) or hashes within max_bits."""
    bits = hashes.astype(np.float32)
    pairs = []
    for start in range(0, len(bits), 512):
        block = bits[start : start + 512]
        distance = block @ (1 - bits).T + (1 - block) @ bits.T
        for a, b in zip(*np.nonzero(distance <= max_bits), strict=True):
            i, j = start + int(a), int(b)
            if i < j:
                pairs.append((i, j, -1 if digests[i] == digests[j] else int(distance[a, b])))
    seen = {(i, j) for i, j, _ in pairs}
    by_digest: dict[str, int] = {}
    for j, digest in enumerate(digests):  # exact copies whose hashes differ cannot exist,
        i = by_digest.setdefault(digest, j)  # but keep this cheap safety net
        if i != j and (i, j) not in seen:
            pairs.append((i, j, -1))
    return pairs
