"""Dataset sources: read files on disk (or generate) into uint8 NCHW numpy arrays.

Every reader returns a :class:`RawData` at the source's native size and channels; resizing,
channel adaptation, splitting and moving to a device happen once, later, in
:mod:`coatnet_nas.data.tensors`. Names accepted by :func:`load_raw` (see ``DATASETS``):

* ``synthetic`` / ``synthetic:N`` — the procedural task of :mod:`coatnet_nas.data.synthetic`;
* ``fashion-mnist`` — the standard IDX files (``.gz`` or uncompressed);
* ``cifar10`` / ``cifar100`` — the official python-pickle archives, extracted or as the
  ``.tar.gz`` itself (read in place, no extraction needed);

  both read once into a prepared, memory-mapped cache at their native size
  (:mod:`coatnet_nas.data.native`), the same format image folders use, so every data set
  reaches training by one path;
* ``folder:<path>`` — one sub-folder per class (or ``train/`` + ``val/``/``test/`` splits, each
  with a sub-folder per class), decoded once into a memory-mapped prepared cache.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from coatnet_nas.data import locate, synthetic
from coatnet_nas.data.cache import load_folder
from coatnet_nas.data.cifar import CIFAR, load_cifar, load_pickle
from coatnet_nas.data.folder import IMAGE_SUFFIXES
from coatnet_nas.data.idx import FMNIST_CLASSES, fmnist_complete, load_fashion_mnist, read_idx
from coatnet_nas.data.idx import WANTED as FMNIST_WANTED
from coatnet_nas.data.native import load_native
from coatnet_nas.data.raw import RawData, readonly, stamp
from coatnet_nas.errors import DataError

__all__ = [
    "CIFAR",
    "DATASETS",
    "FMNIST_CLASSES",
    "IMAGE_SUFFIXES",
    "DataSource",
    "RawData",
    "dataset_names",
    "find_dataset",
    "load_pickle",
    "load_raw",
    "parse_name",
    "read_idx",
    "register_source",
]

Loader = Callable[[str | None, Path | None, tuple[int, int]], RawData]
Progress = Callable[[int, int], None]
# The progress callback of the load_raw call in flight: a loader that decodes (image folders)
# reports through it without every registered loader's signature having to take it.
PREPARE_PROGRESS: ContextVar[Progress | None] = ContextVar("prepare_progress", default=None)


@dataclass(frozen=True)
class DataSource:
    """One kind of dataset: its names, how to find its files, how to read them.

    ``load(arg, root, image_size)`` gets the text after ``kind:`` (or None), the directory found
    for on-disk sources (None for the others) and the requested size (used by sources that must
    resize while reading, like image folders). A source with ``present_in`` is looked for under
    the usual roots (see :mod:`coatnet_nas.data.locate`); ``wanted`` and ``hint`` describe its
    files in the not-found message. ``arg_help`` makes the argument mandatory.
    """

    kind: str
    load: Loader
    aliases: tuple[str, ...] = ()
    present_in: Callable[[Path], bool] | None = None
    wanted: str = ""
    hint: str = ""
    label: str | None = None
    arg_help: str | None = None


_SOURCES: dict[str, DataSource] = {}
_ALIASES: dict[str, str] = {}


def register_source(source: DataSource) -> None:
    """Register (or replace) a data source under its kind and aliases."""
    _SOURCES[source.kind] = source
    for name in (source.kind, *source.aliases):
        _ALIASES[name] = source.kind


def dataset_names() -> tuple[str, ...]:
    """Every registered source, as a user writes it (``folder:<path>``)."""
    return tuple(s.label or s.kind for s in _SOURCES.values())


def parse_name(name: str) -> tuple[str, str | None]:
    """Normalize a dataset name: ``"Fashion_MNIST"`` -> ``("fashion-mnist", None)``,
    ``"folder:~/x"`` -> ``("folder", "~/x")``. Raises :class:`DataError` for unknown names.
    """
    head, sep, arg = str(name).strip().partition(":")
    key = head.strip().lower().replace("_", "-")
    kind = _ALIASES.get(key) or _ALIASES.get(key.replace("-", ""))
    if kind is None:
        close = difflib.get_close_matches(key, list(_ALIASES), n=1, cutoff=0.6)
        hint = f" (did you mean {_ALIASES[close[0]]!r}?)" if close else ""
        shown = str(name) if len(str(name)) <= 80 else str(name)[:77] + "..."
        raise DataError(
            f"unknown dataset {shown!r}{hint}; available: {', '.join(dataset_names())}.",
            param="dataset",
        )
    help_text = _SOURCES[kind].arg_help
    if help_text and not arg.strip():
        raise DataError(f"dataset {kind!r} needs {help_text}.", param="dataset")
    return kind, (arg.strip() if sep else None)


def load_raw(
    name: str,
    data_dir: str | Path | None = None,
    image_size: tuple[int, int] = (32, 32),
    *,
    progress: Progress | None = None,
) -> RawData:
    """Read (or generate) dataset ``name``; ``image_size`` only matters for image folders.

    Results are cached per process (read-only arrays), because a search prepares the same data
    many times; image folders are memory-mapped from their prepared cache (decoded on first use,
    reporting ``progress(done, total)`` images while it does).
    """
    kind, arg = parse_name(name)
    source = _SOURCES[kind]
    root = None
    if source.present_in is not None:
        root, searched = locate.find_dir(kind, source.present_in, data_dir)
        if root is None:
            message = locate.missing_message(kind, source.wanted, searched, hint=source.hint)
            raise DataError(message, param="data_dir")
    token = PREPARE_PROGRESS.set(progress)
    try:
        return source.load(arg, root, tuple(image_size))
    finally:
        PREPARE_PROGRESS.reset(token)


def find_dataset(name: str, data_dir: str | Path | None = None) -> tuple[Path | None, list[Path]]:
    """Where the files of an on-disk dataset are (or None), and every place searched."""
    kind, _ = parse_name(name)
    present_in = _SOURCES[kind].present_in
    if present_in is None:
        raise DataError(f"dataset {name!r} is not read from a data directory.")
    return locate.find_dir(kind, present_in, data_dir)


# --- the built-in sources --------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _synthetic(n: int) -> RawData:
    train_x, train_y = synthetic.make_synthetic(n, seed=0)
    test_x, test_y = synthetic.make_synthetic(max(len(synthetic.CLASSES), n // 6), seed=1)
    readonly(train_x, train_y, test_x, test_y)
    return RawData(
        f"synthetic:{n}" if n != synthetic.DEFAULT_TRAIN else "synthetic",
        train_x,
        train_y,
        test_x,
        test_y,
        synthetic.CLASSES,
        "generated (seeded)",
    )


def _folder(arg: str | None, _root: Path | None, size: tuple[int, int]) -> RawData:
    root = Path(arg or "").expanduser().resolve()
    return load_folder(root, size, progress=PREPARE_PROGRESS.get())


def _on_disk(kind: str, read: Callable[[str, float], RawData]) -> Loader:
    """A loader that reads the raw files once into the prepared cache and maps it after."""

    def load(_arg: str | None, root: Path | None, _size: tuple[int, int]) -> RawData:
        assert root is not None  # found by present_in
        where, when = str(root.resolve()), stamp(root)
        return load_native(kind, where, when, lambda: read(where, when))

    return load


register_source(
    DataSource(
        "synthetic",
        lambda arg, _root, _size: _synthetic(synthetic.parse_count(arg)),
    )
)
register_source(
    DataSource(
        "fashion-mnist",
        _on_disk("fashion-mnist", load_fashion_mnist.__wrapped__),
        ("fashionmnist", "fmnist"),
        present_in=fmnist_complete,
        wanted=FMNIST_WANTED,
        hint=", or install Debian's dataset-fashion-mnist package",
    )
)
for _kind, _alias in (("cifar10", "cifar-10"), ("cifar100", "cifar-100")):
    register_source(
        DataSource(
            _kind,
            _on_disk(_kind, functools.partial(load_cifar.__wrapped__, _kind)),
            (_alias,),
            present_in=CIFAR[_kind].present_in,
            wanted=f"{CIFAR[_kind].folder}/ or {CIFAR[_kind].archive}",
        )
    )
register_source(
    DataSource(
        "folder",
        _folder,
        label="folder:<path>",
        arg_help="a path: folder:/path/to/images (a sub-folder per class)",
    )
)

DATASETS = dataset_names()  # the built-in ones; dataset_names() includes registered additions
