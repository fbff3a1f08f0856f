"""Where datasets live: one search order shared by the loaders, ``coatnet data`` and the errors.

A dataset directory is looked up, in order, under the caller's ``data_dir``, ``$COATNET_DATA``,
the user cache dir (where ``coatnet data fetch`` writes) and ``/usr/share/datasets`` (Debian's
``dataset-*`` packages). Each root may hold the files directly or in a sub-folder named after the
dataset, so ``data_dir=~/fmnist`` and ``data_dir=~/datasets`` both work.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import platformdirs

ENV_VAR = "COATNET_DATA"
SYSTEM_ROOT = Path("/usr/share/datasets")


def cache_root() -> Path:
    """The per-user directory ``coatnet data fetch`` downloads into by default."""
    return Path(platformdirs.user_cache_dir("coatnet-nas")) / "datasets"


def search_roots(data_dir: str | Path | None = None) -> list[Path]:
    """Roots in search order (duplicates removed)."""
    roots: list[Path] = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    env = os.environ.get(ENV_VAR)
    if env:
        roots.extend(Path(p).expanduser() for p in env.split(os.pathsep) if p)
    roots += [cache_root(), SYSTEM_ROOT]
    unique: list[Path] = []
    for root in roots:
        if root not in unique:
            unique.append(root)
    return unique


def candidates(name: str, data_dir: str | Path | None = None) -> list[Path]:
    """Every directory that may hold dataset ``name``, in search order."""
    out: list[Path] = []
    for root in search_roots(data_dir):
        for path in (root / name, root):
            if path not in out:
                out.append(path)
    return out


def find_dir(
    name: str, is_complete: Callable[[Path], bool], data_dir: str | Path | None = None
) -> tuple[Path | None, list[Path]]:
    """The first candidate directory that ``is_complete``, and the list that was searched."""
    searched = candidates(name, data_dir)
    for path in searched:
        if path.is_dir() and is_complete(path):
            return path, searched
    return None, searched


def missing_message(name: str, wanted: str, searched: Iterable[Path], hint: str = "") -> str:
    """One paragraph naming what was looked for, where, and how to get it."""
    places = ", ".join(str(p) for p in searched)
    return (
        f"dataset {name!r} not found: looked for {wanted} in {places}. "
        f"Download it with `coatnet data fetch {name}` (into {cache_root() / name}), "
        f"or point data_dir / ${ENV_VAR} at a directory that holds it{hint}."
    )
