"""Image folders: one sub-folder per class (or train/ + val/ or test/ splits), as a file list.

A folder is never decoded here: :func:`scan_folder` lists its files (sorted, so the list and its
digests are reproducible) and :mod:`coatnet_nas.data.cache` decodes them once into a prepared,
memory-mapped cache that every later run reads.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from coatnet_nas.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "FolderPlan", "scan_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


@dataclass(frozen=True)
class FolderPlan:
    """Every image of a folder: relative paths, labels, and how many rows are training rows.

    Training files come first (``n_train`` of them), then the held-out split's, each sorted by
    class then path. ``files_digest`` names the list (paths and labels); ``mtimes_digest`` also
    covers each file's size and modification time, so an edited image invalidates a cache.
    """

    root: Path
    classes: tuple[str, ...]
    files: tuple[str, ...]
    labels: tuple[int, ...]
    n_train: int
    files_digest: str
    mtimes_digest: str

    @property
    def n_test(self) -> int:
        return len(self.files) - self.n_train


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )


def scan_folder(root: Path) -> FolderPlan:
    """List ``root``'s images (no decoding); raises :class:`DataError` for unusable layouts."""
    if not root.is_dir():
        raise DataError(f"dataset 'folder:{root}': no such directory.")
    split_dirs = {p.name.lower(): p for p in _class_dirs(root)}
    held_out = split_dirs.get("val") or split_dirs.get("test")
    if "train" in split_dirs and held_out is not None:
        trees = [split_dirs["train"], held_out]
    else:
        trees = [root]
    classes = [p.name for p in _class_dirs(trees[0])]
    if len(classes) < 2:
        raise DataError(
            f"dataset 'folder:{root}': found {len(classes)} class folder(s) in {trees[0]}; "
            "expected one sub-folder per class (at least 2), each holding images."
        )
    files: list[str] = []
    labels: list[int] = []
    names = hashlib.sha256()
    stamps = hashlib.sha256()
    n_train = 0
    for tree_index, tree in enumerate(trees):
        for label, cls in enumerate(classes):
            if not (tree / cls).is_dir():
                continue
            for path in _images_in(tree / cls):
                rel = path.relative_to(root).as_posix()
                st = path.stat()
                files.append(rel)
                labels.append(label)
                names.update(f"{tree_index}\t{label}\t{rel}\n".encode())
                stamps.update(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        if tree_index == 0:
            n_train = len(files)
    return FolderPlan(
        root,
        tuple(classes),
        tuple(files),
        tuple(labels),
        n_train,
        names.hexdigest(),
        stamps.hexdigest(),
    )


def empty_classes_message(plan: FolderPlan, counts: list[int], skipped: list[dict]) -> str | None:
    """The error for classes left without a training image (None when every class has one)."""
    empty = [c for c, n in zip(plan.classes, counts, strict=True) if n == 0]
    if not empty:
        return None
    message = (
        f"dataset 'folder:{plan.root}': class folder(s) {', '.join(empty)} hold no images "
        f"({', '.join(IMAGE_SUFFIXES)})"
    )
    if skipped:
        shown = "; ".join(f"{s['file']}: {s['reason']}" for s in skipped[:3])
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        message += f"; {len(skipped)} file(s) skipped as unreadable: {shown}{more}"
    return message + "."
