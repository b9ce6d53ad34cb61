"""Synthetic segmentation data: EM-like mitochondria and pavement-like cracks.

Each generator takes a ``numpy.random.Generator`` and an image size and returns
``(image, mask)``: a float32 image in [0, 1] of shape (H, W) and a uint8 mask of
the same shape with 1 = foreground. The images are built to be learnable but not
trivial: the foreground is never simply "the darkest pixels", because dark
distractors (cell membranes, vesicles, stains, pits) are drawn alongside it.

Everything is vectorised (numpy + scipy.ndimage); a 256x256 image takes a few ms.
:func:`generate` makes a deterministic, named list of images where image ``i``
depends only on ``(seed, i)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage as ndi

from seglab.errors import SeglabError

ImageGenerator = Callable[[np.random.Generator, int, int], tuple[np.ndarray, np.ndarray]]

# --------------------------------------------------------------------------- texture


def _upsample(coarse: np.ndarray, height: int, width: int, step: float) -> np.ndarray:
    """Bilinear upsampling of a grid whose samples lie ``step`` px apart, from (-step, -step)."""
    out = coarse
    for axis, n in ((1, width), (0, height)):  # rows last: gathering whole rows is cheap
        pos = np.arange(n, dtype=np.float32) / np.float32(step) + np.float32(1.0)
        lo = pos.astype(np.int64)
        frac = (pos - lo.astype(np.float32)).reshape((-1, 1) if axis == 0 else (1, -1))
        out = np.take(out, lo, axis=axis) * (1 - frac) + np.take(out, lo + 1, axis=axis) * frac
    return out


def _unit_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """White noise on ``shape`` smoothed by a Gaussian of ``sigma`` samples, scaled to unit std."""
    white = (rng.random(shape, dtype=np.float32) - 0.5) * np.float32(np.sqrt(12.0))
    passes = max(round(2 * sigma**2), 1)
    if passes <= 3:  # a few [1, 2, 1] passes are cheaper than a general Gaussian
        smooth = white
        for _ in range(passes):
            smooth = _soften(smooth)
    else:
        smooth = ndi.gaussian_filter(white, sigma, truncate=3.0)
    return smooth * np.float32(1.0 / max(float(smooth.std()), 1e-6))


def _smooth_noise(
    rng: np.random.Generator, height: int, width: int, *layers: tuple[float, float]
) -> np.ndarray:
    """Sum of zero-mean noise layers, each ``(scale px, amplitude)``, as float32 (H, W).

    Scales below 4 px filter full-resolution noise. Larger ones are smoothed on one
    shared coarse grid and upsampled together, which costs little more than the
    output array itself.
    """
    out = np.zeros((height, width), dtype=np.float32)
    coarse_layers = [(s, a) for s, a in layers if s >= 4.0]
    for scale, amplitude in layers:
        if scale < 4.0:
            out += np.float32(amplitude) * _unit_noise(rng, (height, width), scale)
    if coarse_layers:
        step = min(s for s, _ in coarse_layers) / 2.0
        shape = (int(height / step) + 3, int(width / step) + 3)
        coarse = sum(np.float32(a) * _unit_noise(rng, shape, s / step) for s, a in coarse_layers)
        out += _upsample(coarse, height, width, step)
    return out


def _grain(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Fine, pixel-level noise with unit variance (float32)."""
    return (rng.random((height, width), dtype=np.float32) - 0.5) * np.float32(np.sqrt(12.0))


def _soften(image: np.ndarray) -> np.ndarray:
    """A light blur (separable [1, 2, 1] / 4, i.e. a Gaussian of sigma ~0.7 px)."""
    p = np.pad(image, 1, mode="edge")
    rows = p[:-2] + 2 * p[1:-1] + p[2:]
    return (rows[:, :-2] + 2 * rows[:, 1:-1] + rows[:, 2:]) * np.float32(0.0625)


# --------------------------------------------------------------------------- drawing


def _stamp(canvas: np.ndarray, points: np.ndarray, radii: np.ndarray | float) -> None:
    """Set to 1 every pixel of ``canvas`` within ``radii`` of a point (y, x) in ``points``.

    The pixel nearest each point is always set, so a densely sampled curve is drawn
    without gaps even where its radius is below half a pixel.
    """
    radii = np.broadcast_to(np.asarray(radii, dtype=np.float32), (len(points),))
    reach = int(np.ceil(radii.max())) if len(points) else 0
    offsets = np.arange(-reach, reach + 1)
    oy, ox = (a.ravel() for a in np.meshgrid(offsets, offsets, indexing="ij"))
    inside = np.all((points > -reach - 1) & (points < np.array(canvas.shape) + reach), axis=1)
    points, radii = points[inside], radii[inside]
    base = np.rint(points).astype(np.int64)
    ys = base[:, 0:1] + oy[None, :]
    xs = base[:, 1:2] + ox[None, :]
    dist = np.hypot(ys - points[:, 0:1], xs - points[:, 1:2])
    keep = (dist <= radii[:, None]) | ((oy == 0) & (ox == 0))[None, :]
    keep &= (ys >= 0) & (ys < canvas.shape[0]) & (xs >= 0) & (xs < canvas.shape[1])
    canvas[ys[keep], xs[keep]] = 1


def _discs(
    shape: tuple[int, int], centres: np.ndarray, radii: np.ndarray, margin: float
) -> np.ndarray:
    """Signed distance (px, negative inside) to the nearest of several discs, capped at margin.

    Each disc is evaluated only inside its bounding box grown by ``margin``.
    """
    best = np.full(shape, margin, dtype=np.float32)
    for (cy, cx), r in zip(centres, radii, strict=True):
        reach = r + margin
        y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 2, shape[0])
        x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 2, shape[1])
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.ogrid[y0:y1, x0:x1]
        box = best[y0:y1, x0:x1]
        np.minimum(box, np.hypot(yy - cy, xx - cx) - r, out=box)
    return best


def _ring(distance: np.ndarray, at: float, width: float) -> np.ndarray:
    """A soft line of the given width (px) where ``distance == at``."""
    return np.exp(-0.5 * ((distance - at) / (0.5 * width)) ** 2)


# --------------------------------------------------------------------------- EM


def _wavy_line(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Points (N, 2) densely sampled along a smooth curve that crosses the image."""
    side = float(np.hypot(height, width))
    centre = rng.uniform((0.0, 0.0), (height, width))
    angle = rng.uniform(0.0, np.pi)
    direction = np.array([np.sin(angle), np.cos(angle)])
    normal = np.array([direction[1], -direction[0]])
    t = np.arange(-side, side, 0.4)
    offset = np.zeros_like(t)
    for _ in range(3):
        period = rng.uniform(0.25, 1.2) * side
        amplitude = rng.uniform(0.01, 0.05) * side
        offset += amplitude * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    return centre + t[:, None] * direction + offset[:, None] * normal


def _membranes(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Binary layer of 3-6 thin (1-2 px) curves: cell membranes, not foreground."""
    layer = np.zeros((height, width), dtype=np.float32)
    for _ in range(rng.integers(3, 7)):
        _stamp(layer, _wavy_line(rng, height, width), rng.uniform(0.4, 1.0))
    return layer


def _place_ellipses(rng: np.random.Generator, height: int, width: int) -> list[tuple]:
    """2-8 ellipses (cy, cx, a, b, angle) that overlap each other only a little."""
    side = float(np.sqrt(height * width))
    ellipses: list[tuple] = []
    for _ in range(rng.integers(2, 9)):
        for _attempt in range(20):
            a = rng.uniform(0.08, 0.14) * side
            b = rng.uniform(0.06, min(0.11, a / side)) * side
            cy = rng.uniform(-0.05, 1.05) * height
            cx = rng.uniform(-0.05, 1.05) * width
            if all(np.hypot(cy - e[0], cx - e[1]) > 0.5 * (a + b + e[2] + e[3]) for e in ellipses):
                ellipses.append((cy, cx, a, b, rng.uniform(0.0, np.pi)))
                break
    return ellipses


def _ellipse_frame(shape: tuple[int, int], ellipse: tuple) -> tuple:
    """Bounding box slices plus (u, v) coordinates along and across the ellipse's axes."""
    cy, cx, a, _b, angle = ellipse
    y0, y1 = max(int(cy - a) - 3, 0), min(int(cy + a) + 4, shape[0])
    x0, x1 = max(int(cx - a) - 3, 0), min(int(cx + a) + 4, shape[1])
    yy, xx = np.ogrid[y0:y1, x0:x1]
    dy, dx = (yy - cy).astype(np.float32), (xx - cx).astype(np.float32)
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    return (slice(y0, y1), slice(x0, x1)), u, v


def _ellipse_distance(u: np.ndarray, v: np.ndarray, a: float, b: float) -> np.ndarray:
    """Approximate signed distance (px, negative inside) to an ellipse's outline."""
    r = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    gradient = np.sqrt((u / a**2) ** 2 + (v / b**2) ** 2) / np.maximum(r, 1e-6)
    return (r - 1.0) / np.maximum(gradient, 1e-6)


def _cristae(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, b: float) -> np.ndarray:
    """Wavy folds across the mitochondrion's long axis, broken into irregular pieces."""
    spacing = rng.uniform(4.0, 7.0)
    wobble = rng.uniform(0.5, 2.0) * np.sin(v / rng.uniform(2.0, 5.0) + rng.uniform(0, 6.3))
    phase = (u + wobble) / spacing + rng.uniform(0, 1)
    fold = _ring(phase - np.round(phase), 0.0, 1.4 / spacing)
    broken = np.cos(u * rng.uniform(0.2, 0.6) + rng.uniform(0, 6.3)) > rng.uniform(-0.6, 0.2)
    return fold * broken * (np.abs(v) < 0.75 * b)


def _mitochondria(
    rng: np.random.Generator, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Darkness layer, mask and a slightly larger keep-out zone of 2-8 mitochondria.

    Each has a darker body, an outer double membrane and irregular cristae inside.
    """
    darkness = np.zeros((height, width), dtype=np.float32)
    mask = np.zeros((height, width), dtype=np.uint8)
    keep_out = np.zeros((height, width), dtype=bool)
    for ellipse in _place_ellipses(rng, height, width):
        box, u, v = _ellipse_frame((height, width), ellipse)
        a, b = ellipse[2], ellipse[3]
        d = _ellipse_distance(u, v, a, b)
        inside = d <= 0.0
        body = inside * rng.uniform(0.10, 0.2)
        membranes = 0.55 * _ring(d, -0.9, 1.3) + 0.45 * _ring(d, -3.2, 1.3)
        cristae = rng.uniform(0.25, 0.45) * _cristae(rng, u, v, b) * (d < -4.5)
        darkness[box] = np.maximum(darkness[box], body + membranes + cristae)
        mask[box] |= inside.astype(np.uint8)
        keep_out[box] |= d <= 3.0
    return darkness, mask, keep_out


def _vesicles(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Darkness layer of small dark round blobs: distractors, not foreground."""
    n = rng.integers(4, 14)
    side = float(np.sqrt(height * width))
    centres = rng.uniform((0.0, 0.0), (height, width), size=(n, 2))
    radii = rng.uniform(0.012, 0.03, size=n) * side
    d = _discs((height, width), centres, radii, margin=5.0)
    return 0.45 * np.clip(0.5 - d, 0.0, 1.0) + 0.25 * _ring(d, -0.5, 1.5)


def make_em_image(
    rng: np.random.Generator, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """An electron-microscopy-like image and its mitochondria mask (1 = mitochondrion)."""
    side = float(np.sqrt(height * width))
    fine = _smooth_noise(rng, height, width, (1.2, 1.0))
    background = (
        0.62
        + _smooth_noise(rng, height, width, (0.12 * side, 0.05), (0.03 * side, 0.04))
        + 0.03 * fine
    )
    mito, mask, keep_out = _mitochondria(rng, height, width)
    cells = 0.6 * _membranes(rng, height, width) + _vesicles(rng, height, width)
    cells[keep_out] = 0.0
    darkness = np.clip(mito * (1.0 + 0.3 * fine) + cells, 0.0, 0.85)
    image = _soften(background * (1.0 - darkness))
    image += 0.035 * _grain(rng, height, width)
    return np.clip(image, 0.0, 1.0).astype(np.float32), mask


# --------------------------------------------------------------------------- cracks


def _crack_path(
    rng: np.random.Generator, start: np.ndarray, heading: float, length: float
) -> np.ndarray:
    """Points (N, 2) of a jagged walk: short straight runs that zig-zag about a drifting heading."""
    step = 0.5
    n = max(int(length / step), 2)
    run = rng.integers(4, 16, size=n).cumsum()
    zigzag = rng.normal(0.0, 0.45, size=n)[np.searchsorted(run, np.arange(n), side="right")]
    drift = np.cumsum(rng.normal(0.0, 0.012, size=n))
    angles = heading + drift + zigzag
    steps = step * np.stack([np.sin(angles), np.cos(angles)], axis=1)
    return start + np.cumsum(steps, axis=0)


def _crack_widths(rng: np.random.Generator, n: int, base: float) -> np.ndarray:
    """Radii along a crack: a smoothly varying width of 1-4 px, tapered at the ends."""
    t = np.linspace(0.0, 1.0, n)
    wave = 0.35 * np.sin(2 * np.pi * t * rng.uniform(1, 4) + rng.uniform(0, 6.3))
    taper = np.clip(np.minimum(t, 1 - t) * 8, 0.35, 1.0)
    return np.clip(base * (1 + wave) * taper, 1.0, 3.2) / 2  # radius 1.6 spans 4 px


def _cracks(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Binary layer of 1-3 cracks that grow both ways from a seed point, some with a branch."""
    side = float(np.sqrt(height * width))
    layer = np.zeros((height, width), dtype=np.uint8)
    for _ in range(rng.integers(1, 4)):
        seed = rng.uniform((0.2 * height, 0.2 * width), (0.8 * height, 0.8 * width))
        heading = rng.uniform(0, 2 * np.pi)
        ahead = _crack_path(rng, seed, heading, rng.uniform(0.3, 0.7) * side)
        behind = _crack_path(rng, seed, heading + np.pi, rng.uniform(0.3, 0.7) * side)
        path = np.concatenate([behind[::-1], ahead])
        base = rng.uniform(1.6, 3.2)
        _stamp(layer, path, _crack_widths(rng, len(path), base))
        if rng.random() < 0.5:
            fork = path[rng.integers(len(path) // 4, 3 * len(path) // 4)]
            turn = heading + rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 1.2)
            twig = _crack_path(rng, fork, turn, rng.uniform(0.15, 0.4) * side)
            _stamp(layer, twig, _crack_widths(rng, len(twig), 0.7 * base))
    return layer


def _stains(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Darkness layer of soft stains and small dark pits: distractors, not foreground."""
    side = float(np.sqrt(height * width))
    n_stains, n_pits = rng.integers(1, 4), rng.integers(4, 12)
    spread = 0.05 * side
    stains = _discs(
        (height, width),
        rng.uniform((0.0, 0.0), (height, width), size=(n_stains, 2)),
        rng.uniform(0.02, 0.08, size=n_stains) * side,
        margin=3 * spread,
    )
    pits = _discs(
        (height, width),
        rng.uniform((0.0, 0.0), (height, width), size=(n_pits, 2)),
        rng.uniform(1.0, 3.0, size=n_pits),
        margin=4.0,
    )
    blot = 1.0 + _smooth_noise(rng, height, width, (0.04 * side, 0.5))
    soft = 0.2 * np.exp(-0.5 * (np.maximum(stains, 0.0) / spread) ** 2) * blot
    return np.clip(soft, 0.0, 0.35) + 0.55 * np.clip(0.5 - pits, 0.0, 1.0)


def make_crack_image(
    rng: np.random.Generator, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """A pavement/concrete-like image and its crack mask (1 = crack)."""
    aggregate = np.tanh(_smooth_noise(rng, height, width, (1.8, 1.2)))
    background = (
        0.58
        + rng.uniform(-0.08, 0.08)
        + _smooth_noise(rng, height, width, (0.2 * np.sqrt(height * width), 0.05))
        + 0.06 * aggregate
    )
    mask = _cracks(rng, height, width)
    crack = _soften(mask.astype(np.float32)) * rng.uniform(0.45, 0.65)
    darkness = np.clip(crack + _stains(rng, height, width), 0.0, 0.85)
    image = background * (1.0 - darkness) + 0.06 * _grain(rng, height, width)
    return np.clip(image, 0.0, 1.0).astype(np.float32), mask


# --------------------------------------------------------------------------- API

GENERATORS: dict[str, ImageGenerator] = {"em": make_em_image, "crack": make_crack_image}


def generate(
    kind: str, n_images: int, height: int, width: int, seed: int
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``n_images`` named (name, image, mask) triples of one synthetic ``kind``.

    Image ``i`` comes from ``np.random.default_rng([seed, i])``, so the same
    arguments give byte-identical output and image ``i`` does not depend on
    ``n_images``.
    """
    if kind not in GENERATORS:
        raise SeglabError(f"unknown synthetic kind {kind!r}", hint="use one of: em, crack")
    make = GENERATORS[kind]
    samples = []
    for i in range(n_images):
        image, mask = make(np.random.default_rng([seed, i]), height, width)
        samples.append((f"{kind}_{i:04d}", image, mask))
    return samples
