"""A dataset as read from its source: uint8 NCHW arrays at the native size, plus helpers that
every reader shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["RawData", "readonly", "stamp"]


@dataclass(frozen=True)
class RawData:
    """A dataset at its native resolution: uint8 images ``(N, C, H, W)``, int64 labels."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray | None
    test_labels: np.ndarray | None
    classes: tuple[str, ...]
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def stamp(path: Path) -> float:
    """Invalidates the cache when a directory's contents change."""
    try:
        return max([path.stat().st_mtime, *(p.stat().st_mtime for p in path.iterdir())])
    except OSError:
        return 0.0


def readonly(*arrays: np.ndarray | None) -> None:
    for a in arrays:
        if a is not None:
            a.setflags(write=False)
