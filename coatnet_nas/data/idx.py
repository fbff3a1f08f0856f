"""Fashion-MNIST from its standard IDX files (gzip-compressed or not)."""

from __future__ import annotations

import functools
import gzip
import zlib
from pathlib import Path

import numpy as np

from coatnet_nas.data.raw import RawData, readonly
from coatnet_nas.errors import DataError

__all__ = ["FMNIST_CLASSES", "WANTED", "fmnist_complete", "load_fashion_mnist", "read_idx"]

WANTED = "train-images-idx3-ubyte(.gz) and train-labels-idx1-ubyte(.gz)"

FMNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not, detected from its magic bytes)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc}).") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()}).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header.")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: IDX header says {dims} ({expected} bytes) but the file holds "
            f"{len(raw) - header} bytes of data; the file is truncated or corrupt."
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _idx_path(root: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    return None


def fmnist_complete(path: Path) -> bool:
    return all(_idx_path(path, f"train-{k}") for k in ("images-idx3-ubyte", "labels-idx1-ubyte"))


def _read_idx_pair(root: Path, prefix: str) -> tuple[np.ndarray, np.ndarray] | None:
    images_path = _idx_path(root, f"{prefix}-images-idx3-ubyte")
    labels_path = _idx_path(root, f"{prefix}-labels-idx1-ubyte")
    if images_path is None or labels_path is None:
        return None
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"{root}: {images_path.name} {images.shape} and {labels_path.name} {labels.shape} "
            "do not form an image/label pair."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(FMNIST_CLASSES)):
        raise DataError(f"{labels_path}: labels outside 0..{len(FMNIST_CLASSES) - 1}.")
    return np.ascontiguousarray(images[:, None], dtype=np.uint8), labels.astype(np.int64)


@functools.lru_cache(maxsize=2)
def load_fashion_mnist(root: str, stamp: float) -> RawData:
    path = Path(root)
    train = _read_idx_pair(path, "train")
    assert train is not None  # found by fmnist_complete
    test = _read_idx_pair(path, "t10k") or (None, None)
    readonly(*train, *test)
    return RawData("fashion-mnist", *train, *test, FMNIST_CLASSES, root)
