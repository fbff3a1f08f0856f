"""Prepared caches: an image folder decoded once at one size, then memory-mapped by every run.

A cache is a directory under :func:`prepared_root` (``$COATNET_CACHE`` if set, else
``prepared/`` in the user cache dir), named after the folder's resolved path and the size::

    <name>-<sha256(path)[:12]>-<H>x<W>/
        images.npy     uint8 (N, 3, H, W): training rows first, then the held-out split's
        labels.npy     int64 (N,)
        manifest.json  classes, counts, digests, skipped files; written last, atomically
        progress.json  only while preparing: the chunks already written (for resuming)

A cache counts as complete only when ``manifest.json`` exists and its digests match the folder
as listed now (paths, labels, sizes, modification times), so a killed prepare, an edited image
or another tool version is never mistaken for a usable cache. Unreadable images are listed in
the manifest with the reason and left out. Fashion-MNIST and CIFAR use the same format in
``<kind>-<sha256(path)[:12]>-native/`` directories (see :mod:`coatnet_nas.data.native`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from coatnet_nas import __version__
from coatnet_nas._io import allocate_file, atomic_write, atomic_write_json, ensure_dir
from coatnet_nas.data import locate
from coatnet_nas.data.decode import DECODERS, default_decoder
from coatnet_nas.data.folder import FolderPlan, empty_classes_message, scan_folder
from coatnet_nas.data.prepare import CHUNK, Progress, decode_into, default_workers
from coatnet_nas.data.raw import RawData, readonly
from coatnet_nas.errors import DataError

__all__ = [
    "ENV_VAR",
    "FORMAT",
    "cache_dir",
    "clean_caches",
    "list_caches",
    "load_folder",
    "prepare_folder",
    "prepared_root",
]

ENV_VAR = "COATNET_CACHE"
FORMAT = 1  # bump when the layout or the resize rule changes: old caches are then rebuilt


def prepared_root() -> Path:
    """Where prepared caches live: ``$COATNET_CACHE`` or ``<user cache>/coatnet-nas/prepared``."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else locate.cache_root().parent / "prepared"


def cache_dir(root: Path, size: tuple[int, int]) -> Path:
    """The cache directory of folder ``root`` (resolved) at ``size`` (H, W)."""
    root = Path(root).expanduser().resolve()
    key = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return prepared_root() / f"{root.name or 'root'}-{key}-{size[0]}x{size[1]}"


def _manifest(directory: Path) -> dict | None:
    try:
        return json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def _fresh(manifest: dict | None, plan: FolderPlan, size: tuple[int, int]) -> bool:
    return bool(manifest) and (
        manifest.get("format") == FORMAT
        and manifest.get("files_digest") == plan.files_digest
        and manifest.get("mtimes_digest") == plan.mtimes_digest
        and manifest.get("size") == list(size)
    )


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One prepare per cache at a time (parallel search workers may all ask for it)."""
    ensure_dir(directory)
    with open(directory / ".lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare_folder(
    root: str | Path,
    size: tuple[int, int],
    *,
    workers: int | None = None,
    decoder: str | None = None,
    progress: Progress | None = None,
    force: bool = False,
    chunk: int = CHUNK,
) -> Path:
    """Decode folder ``root`` at ``size`` into its cache (unless a fresh one exists); its path.

    ``workers`` processes decode in parallel (default: one per core); ``decoder`` is one of
    :data:`~coatnet_nas.data.decode.DECODERS` (default: the fastest installed). An interrupted
    prepare resumes where it stopped. ``progress(done, total)`` is called after each ``chunk``
    images (the unit of resumption).
    """
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise DataError(f"workers must be >= 1, got {workers}.", param="workers")
    decoder = decoder or default_decoder()
    if decoder not in DECODERS:
        raise DataError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}.")
    plan = scan_folder(Path(root).expanduser().resolve())
    if not plan.files:
        raise DataError(empty_classes_message(plan, [0] * len(plan.classes), []) or "no images")
    directory = cache_dir(plan.root, size)
    with _locked(directory):
        if not force and _fresh(_manifest(directory), plan, size):
            return directory
        (directory / "manifest.json").unlink(missing_ok=True)  # from here on: not complete
        key = f"{FORMAT}|{__version__}|{size}|{decoder}|{chunk}|{plan.files_digest}"
        key += f"|{plan.mtimes_digest}"
        skipped = decode_into(
            directory,
            [str(plan.root / f) for f in plan.files],
            size,
            plan=hashlib.sha256(key.encode()).hexdigest(),
            decoder=decoder,
            workers=workers,
            chunk=chunk,
            progress=progress,
        )
        _finish(directory, plan, size, decoder, skipped)
    return directory


def _finish(
    directory: Path, plan: FolderPlan, size: tuple[int, int], decoder: str, skipped: list
) -> None:
    """Labels, then the manifest (last: it is what makes the cache complete)."""
    bad = {row for row, _ in skipped}
    keep = np.array([r for r in range(len(plan.files)) if r not in bad], dtype=np.int64)
    labels = np.asarray(plan.labels, dtype=np.int64)[keep]
    n_train = int((keep < plan.n_train).sum())
    atomic_write(directory / "labels.npy", lambda tmp: _save_npy(tmp, labels))
    images = "images.npy"
    if bad:  # rare: copy the readable rows into a separate file (the work file stays resumable)
        images = "images.valid.npy"
        atomic_write(
            directory / images, lambda tmp: _copy_rows(directory / "images.npy", keep, tmp)
        )
    skips = [{"file": plan.files[r], "reason": why} for r, why in skipped]
    counts = np.bincount(labels[:n_train], minlength=len(plan.classes)).tolist()
    message = empty_classes_message(plan, counts, skips)
    if message:
        raise DataError(message)
    atomic_write_json(
        directory / "manifest.json",
        {
            "format": FORMAT,
            "tool_version": __version__,
            "source": str(plan.root),
            "size": list(size),
            "layout": "NCHW uint8 RGB",
            "resize": "cover then centre crop",
            "decoder": decoder,
            "classes": list(plan.classes),
            "images": images,
            "train": n_train,
            "test": len(labels) - n_train,
            "class_counts": counts,
            "files_digest": plan.files_digest,
            "mtimes_digest": plan.mtimes_digest,
            "skipped": skips,
        },
    )
    (directory / "progress.json").unlink(missing_ok=True)
    if bad:
        (directory / "images.npy").unlink(missing_ok=True)


def _copy_rows(source: Path, keep: np.ndarray, target: Path) -> None:
    """``source[keep]`` into a new ``.npy`` in bounded memory."""
    rows = np.load(source, mmap_mode="r")
    out = np.lib.format.open_memmap(
        target, mode="w+", dtype=np.uint8, shape=(len(keep), *rows.shape[1:])
    )
    allocate_file(target)  # a full disk: an error now, not SIGBUS mid-copy
    for start in range(0, len(keep), 1024):
        out[start : start + 1024] = rows[keep[start : start + 1024]]
    out.flush()


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array)


def load_folder(
    root: str | Path, size: tuple[int, int], *, progress: Progress | None = None
) -> RawData:
    """Folder ``root`` at ``size`` as memory-mapped arrays, preparing its cache if needed."""
    directory = prepare_folder(root, size, progress=progress)
    manifest = _manifest(directory)
    assert manifest is not None  # prepare_folder returns only complete caches
    images = np.load(directory / manifest["images"], mmap_mode="r")
    labels = np.load(directory / "labels.npy")
    n = manifest["train"]
    test = (images[n:], labels[n:]) if manifest["test"] else (None, None)
    readonly(labels)
    return RawData(
        f"folder:{manifest['source']}",
        images[:n],
        labels[:n],
        *test,
        tuple(manifest["classes"]),
        manifest["source"],
    )


def list_caches() -> list[dict]:
    """Every cache directory under :func:`prepared_root`: kind (``folder`` or the data set), source,
    size, state, bytes on disk."""
    root = prepared_root()
    rows = []
    found = sorted(p for p in root.glob("*") if p.is_dir() and not p.is_symlink())
    for directory in found if root.is_dir() else []:
        manifest = _manifest(directory) or {}
        native = directory.name.endswith("-native")  # <kind>-<key>-native: an array data set
        kind = manifest.get("kind") or (directory.name.rsplit("-", 2)[0] if native else "folder")
        rows.append(
            {
                "path": str(directory),
                "kind": kind,
                "source": manifest.get("source"),
                "size": manifest.get("size"),
                "images": manifest.get("train", 0) + manifest.get("test", 0),
                "skipped": len(manifest.get("skipped", [])),
                "complete": bool(manifest),
                "bytes": _disk_bytes(directory),
            }
        )
    return rows


def _disk_bytes(directory: Path) -> int:
    """Allocated bytes (a partial cache's sparse work file counts only what was written)."""
    return sum(p.stat().st_blocks * 512 for p in directory.rglob("*") if p.is_file())


def clean_caches(root: str | Path | None = None, *, kind: str | None = None) -> list[Path]:
    """Remove the caches of folder ``root`` (every size), or of array data set ``kind``
    (``fashion-mnist``, ``cifar10``, ...), or all caches when neither; the removed.

    Only directories directly under :func:`prepared_root` are ever removed.
    """
    base = prepared_root()
    if not base.is_dir():
        return []
    if kind is not None:
        targets = [
            p
            for p in base.iterdir()
            if p.is_dir() and p.name.endswith("-native") and p.name.rsplit("-", 2)[0] == kind
        ]
    elif root is None:
        targets = [p for p in base.iterdir() if p.is_dir()]
    else:
        prefix = cache_dir(Path(root), (0, 0)).name.rsplit("-", 1)[0] + "-"
        targets = [p for p in base.iterdir() if p.is_dir() and p.name.startswith(prefix)]
    removed = []
    for path in sorted(targets):
        if path.resolve().parent != base.resolve() or path.is_symlink():
            continue  # never follow a link out of the cache root
        shutil.rmtree(path)
        removed.append(path)
    return removed
