"""A seeded procedural 10-class colour image task: the offline default for tests and bare machines.

Each image is one shape or texture (the class) drawn at a random position and scale, in random
foreground/background colours with a guaranteed brightness contrast, plus pixel noise. Classes
are invariant under horizontal flips (so flip augmentation never changes the label) and colour
carries no label information, so a model has to learn shape. Everything is vectorized numpy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

CLASSES = (
    "disk",
    "square",
    "triangle",
    "ring",
    "plus",
    "cross",
    "h-stripes",
    "v-stripes",
    "checker",
    "dots",
)
NATIVE_SIZE = 32
DEFAULT_TRAIN = 6000
DEFAULT_TEST = 1000

Arr = np.ndarray
_Shape = Callable[[Arr, Arr, Arr, Arr], Arr]


def _box(dx: Arr, dy: Arr, s: Arr) -> Arr:
    return np.maximum(np.abs(dx), np.abs(dy)) < s


def _stripes(t: Arr, s: Arr, phase: Arr) -> Arr:
    return np.sin(2 * np.pi * t / (0.55 * s) + phase) > 0


_SHAPES: tuple[_Shape, ...] = (
    lambda dx, dy, s, ph: np.hypot(dx, dy) < s,
    lambda dx, dy, s, ph: _box(dx, dy, 0.85 * s),
    lambda dx, dy, s, ph: (np.abs(dy) < s) & (np.abs(dx) < (dy + s) / 2),
    lambda dx, dy, s, ph: np.abs(np.hypot(dx, dy) - 0.8 * s) < 0.25 * s,
    lambda dx, dy, s, ph: ((np.abs(dx) < 0.3 * s) | (np.abs(dy) < 0.3 * s)) & _box(dx, dy, s),
    lambda dx, dy, s, ph: (np.abs(np.abs(dx) - np.abs(dy)) < 0.3 * s) & _box(dx, dy, s),
    lambda dx, dy, s, ph: _stripes(dy, s, ph) & _box(dx, dy, s),
    lambda dx, dy, s, ph: _stripes(np.abs(dx), s, ph) & _box(dx, dy, s),
    lambda dx, dy, s, ph: (_stripes(np.abs(dx), s, ph) ^ _stripes(dy, s, ph)) & _box(dx, dy, s),
    lambda dx, dy, s, ph: np.hypot(np.abs(dx) - 0.6 * s, dy) < 0.38 * s,
)


def make_synthetic(n: int, seed: int = 0, size: int = NATIVE_SIZE) -> tuple[Arr, Arr]:
    """``n`` balanced samples: uint8 images ``(n, 3, size, size)`` and int64 labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.int64) % len(CLASSES)
    rng.shuffle(labels)
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    cx, cy = (rng.uniform(0.32, 0.68, (2, n, 1, 1))).astype(np.float32)
    s = rng.uniform(0.2, 0.32, (n, 1, 1)).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1)).astype(np.float32)
    dx, dy = xx - cx, yy - cy
    mask = np.zeros((n, size, size), dtype=bool)
    for c, shape in enumerate(_SHAPES):
        sel = labels == c
        mask[sel] = shape(dx[sel], dy[sel], s[sel], phase[sel])
    # Brightness contrast of at least ~0.35 between fore- and background; hue is random.
    dark = rng.uniform(0.0, 0.35, (n, 1))
    bright = rng.uniform(0.7, 1.0, (n, 1))
    swap = rng.random((n, 1)) < 0.5
    fg_level, bg_level = np.where(swap, dark, bright), np.where(swap, bright, dark)
    fg = (fg_level * rng.uniform(0.55, 1.0, (n, 3)) * 255).astype(np.float32)
    bg = (bg_level * rng.uniform(0.55, 1.0, (n, 3)) * 255).astype(np.float32)
    img = np.where(mask[:, None], fg[:, :, None, None], bg[:, :, None, None])
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(0.06 * 255)
    images = np.clip(img + 0.5, 0, 255, out=img).astype(np.uint8)
    return images, labels


def parse_count(arg: str | None) -> int:
    """``synthetic`` or ``synthetic:N`` (N training images)."""
    if not arg:
        return DEFAULT_TRAIN
    try:
        n = int(arg)
    except ValueError:
        n = 0
    if n < len(CLASSES):
        from coatnet_nas.errors import DataError

        raise DataError(
            f"dataset 'synthetic:{arg}': expected a number of training images >= {len(CLASSES)}, "
            "e.g. synthetic:6000."
        )
    return n
