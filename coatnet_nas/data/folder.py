"""Image folders: one sub-folder per class (or train/ + val/ or test/ splits), read with Pillow."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from coatnet_nas.data.raw import RawData, readonly
from coatnet_nas.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "load_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )


def _read_tree(
    root: Path, classes: list[str], size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    h, w = size
    arrays, labels = [], []
    for label, cls in enumerate(classes):
        folder = root / cls
        if not folder.is_dir():
            continue
        for path in _images_in(folder):
            try:
                with Image.open(path) as img:
                    # Crop to the target aspect, then resize (no distortion), once at load time.
                    fitted = ImageOps.fit(img.convert("RGB"), (w, h), Image.Resampling.BILINEAR)
            except (OSError, UnidentifiedImageError, ValueError) as exc:
                raise DataError(f"{path}: cannot read image ({exc}).") from None
            arrays.append(np.asarray(fitted, dtype=np.uint8).transpose(2, 0, 1))
            labels.append(label)
    if not arrays:
        return np.zeros((0, 3, h, w), np.uint8), np.zeros((0,), np.int64)
    return np.stack(arrays), np.asarray(labels, dtype=np.int64)


@functools.lru_cache(maxsize=2)
def load_folder(root_text: str, size: tuple[int, int], stamp: float) -> RawData:
    root = Path(root_text)
    if not root.is_dir():
        raise DataError(f"dataset 'folder:{root}': no such directory.")
    split_dirs = {p.name.lower(): p for p in _class_dirs(root)}
    held_out = split_dirs.get("val") or split_dirs.get("test")
    if "train" in split_dirs and held_out is not None:
        train_root = split_dirs["train"]
    else:
        train_root, held_out = root, None
    classes = [p.name for p in _class_dirs(train_root)]
    if len(classes) < 2:
        raise DataError(
            f"dataset 'folder:{root}': found {len(classes)} class folder(s) in {train_root}; "
            "expected one sub-folder per class (at least 2), each holding images."
        )
    train = _read_tree(train_root, classes, size)
    empty = [c for i, c in enumerate(classes) if not (train[1] == i).any()]
    if empty:
        raise DataError(
            f"dataset 'folder:{root}': class folder(s) {', '.join(empty)} hold no images "
            f"({', '.join(IMAGE_SUFFIXES)})."
        )
    test = _read_tree(held_out, classes, size) if held_out is not None else (None, None)
    readonly(*train, *test)
    return RawData(f"folder:{root}", *train, *test, tuple(classes), str(root))  # type: ignore[arg-type]
