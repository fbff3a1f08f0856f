"""Prepared caches of array data sets (Fashion-MNIST, CIFAR): read the raw files once, map after.

The same cache format as an image folder's (see :mod:`coatnet_nas.data.cache`), so every data
set reaches training by one path: uint8 NCHW rows in ``images.npy`` (training rows first, then
the official test rows), ``labels.npy``, and ``manifest.json`` written last. Arrays stay at their
native size (28x28 grey, 32x32 colour); resizing and channel adaptation happen per run in
:func:`coatnet_nas.data.prepare_data`, which also decides from the memory cap whether a run
copies the rows into memory or gathers each batch from the map. A cache is fresh while its
source directory's path and modification stamp are those it was made from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from coatnet_nas import __version__
from coatnet_nas._io import allocate_file, atomic_write, atomic_write_json
from coatnet_nas.data.cache import FORMAT, _locked, _manifest, _save_npy, prepared_root
from coatnet_nas.data.raw import RawData, readonly
from coatnet_nas.errors import CoatnetError, DataError

__all__ = ["load_native", "native_dir"]


def native_dir(kind: str, root: str) -> Path:
    """The cache directory of data set ``kind`` read from directory ``root``."""
    key = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return prepared_root() / f"{kind}-{key}-native"


def _fresh(manifest: dict | None, kind: str, root: str, stamp: float) -> bool:
    return bool(manifest) and (
        manifest.get("format") == FORMAT
        and manifest.get("kind") == kind
        and manifest.get("source") == root
        and manifest.get("stamp") == stamp
    )


def load_native(kind: str, root: str, stamp: float, read: Callable[[], RawData]) -> RawData:
    """Data set ``kind`` from its prepared cache, writing the cache from ``read()`` first if
    it is missing or stale. The returned arrays are read-only memory maps."""
    directory = native_dir(kind, root)
    try:
        manifest = _manifest(directory)
        if not _fresh(manifest, kind, root, stamp):
            with _locked(directory):  # parallel search workers: one of them writes it
                manifest = _manifest(directory)
                if not _fresh(manifest, kind, root, stamp):
                    manifest = _write(directory, read(), kind, root, stamp)
        images = np.load(directory / "images.npy", mmap_mode="r")
        labels = np.load(directory / "labels.npy", mmap_mode="r")
    except OSError as exc:
        raise DataError(
            f"dataset {kind!r}: cannot use the prepared cache {directory} ({exc.strerror or exc});"
            " set $COATNET_CACHE to a writable directory."
        ) from None
    assert manifest is not None
    n, m = manifest["train"], manifest["test"]
    test = (images[n : n + m], labels[n : n + m]) if m else (None, None)
    readonly(labels)
    return RawData(
        manifest["name"], images[:n], labels[:n], *test, tuple(manifest["classes"]), root
    )


def _write(directory: Path, raw: RawData, kind: str, root: str, stamp: float) -> dict:
    """Rows, labels, then the manifest (last: it is what makes the cache complete)."""
    (directory / "manifest.json").unlink(missing_ok=True)
    parts = [raw.train_images] + ([raw.test_images] if raw.test_images is not None else [])
    labels = [raw.train_labels] + ([raw.test_labels] if raw.test_labels is not None else [])
    shape = (sum(len(p) for p in parts), *raw.train_images.shape[1:])
    if raw.test_images is not None and raw.test_images.shape[1:] != shape[1:]:
        raise CoatnetError(f"dataset {kind!r}: train and test images differ in shape.")

    def rows(tmp: Path) -> None:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        allocate_file(tmp)  # a full disk: an error now, not SIGBUS mid-copy
        start = 0
        for part in parts:
            out[start : start + len(part)] = part
            start += len(part)
        out.flush()
        del out

    atomic_write(directory / "images.npy", rows)
    all_labels = np.concatenate([np.asarray(y, dtype=np.int64) for y in labels])
    atomic_write(directory / "labels.npy", lambda tmp: _save_npy(tmp, all_labels))
    manifest = {
        "format": FORMAT,
        "tool_version": __version__,
        "kind": kind,
        "name": raw.name,
        "source": root,
        "stamp": stamp,
        "size": list(shape[2:]),
        "channels": shape[1],
        "layout": "NCHW uint8",
        "resize": "none (native size)",
        "classes": list(raw.classes),
        "train": len(raw.train_images),
        "test": shape[0] - len(raw.train_images),
        "skipped": [],
    }
    atomic_write_json(directory / "manifest.json", manifest)
    return manifest
