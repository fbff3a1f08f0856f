"""CIFAR-10/100 from the official python-pickle archives, extracted or read inside the .tar.gz.

The pickles are read with an unpickler that admits only containers and numpy arrays, so a CIFAR
file cannot run code.
"""

from __future__ import annotations

import functools
import io
import pickle
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coatnet_nas.data.raw import RawData, readonly
from coatnet_nas.errors import DataError

__all__ = ["CIFAR", "CifarLayout", "load_cifar", "load_pickle"]


@dataclass(frozen=True)
class CifarLayout:
    folder: str
    archive: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    names_key: str
    labels_key: str

    def present_in(self, path: Path) -> bool:
        if (path / self.archive).is_file():
            return True
        folder = path if path.name == self.folder else path / self.folder
        return all((folder / m).is_file() for m in (*self.train, self.meta))


CIFAR = {
    "cifar10": CifarLayout(
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "batches.meta",
        "label_names",
        "labels",
    ),
    "cifar100": CifarLayout(
        "cifar-100-python",
        "cifar-100-python.tar.gz",
        ("train",),
        ("test",),
        "meta",
        "fine_label_names",
        "fine_labels",
    ),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickle plain containers and numpy arrays only: a CIFAR file cannot run code."""

    ALLOWED = frozenset(
        (module, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    ) | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def load_pickle(data: bytes, where: str) -> dict:
    """A CIFAR batch/meta pickle as a dict with ``str`` keys."""
    try:
        obj = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # any unpickling failure is a bad file, not a bug here
        raise DataError(f"{where}: not a CIFAR python pickle ({exc}).") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a pickled dict, got {type(obj).__name__}.")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _read_members(path: Path, layout: CifarLayout) -> dict[str, bytes]:
    """The needed pickle files' bytes, from the extracted folder or straight from the archive."""
    wanted = {*layout.train, *layout.test, layout.meta}
    folder = path if path.name == layout.folder else path / layout.folder
    if all((folder / m).is_file() for m in (*layout.train, layout.meta)):
        return {m: (folder / m).read_bytes() for m in wanted if (folder / m).is_file()}
    archive = path / layout.archive
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in wanted and member.name.startswith(layout.folder):
                    handle = tar.extractfile(member)
                    if handle is not None:
                        out[base] = handle.read()
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise DataError(f"{archive}: cannot read archive ({exc}).") from None
    missing = sorted({*layout.train, layout.meta} - set(out))
    if missing:
        raise DataError(f"{archive}: archive lacks {layout.folder}/{', '.join(missing)}.")
    return out


def _cifar_split(
    members: dict[str, bytes], names: Iterable[str], layout: CifarLayout, where: str, n_classes: int
) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    images, labels = [], []
    for m in names:
        if m not in members:
            return None, None
        batch = load_pickle(members[m], f"{where}/{m}")
        try:
            data = np.asarray(batch["data"], dtype=np.uint8)
            y = np.asarray(batch[layout.labels_key], dtype=np.int64)
        except KeyError as exc:
            raise DataError(f"{where}/{m}: missing key {exc} in CIFAR batch.") from None
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(y):
            raise DataError(
                f"{where}/{m}: expected data (N, 3072) and N labels, got {data.shape}, {y.shape}."
            )
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise DataError(f"{where}/{m}: labels outside 0..{n_classes - 1}.")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


@functools.lru_cache(maxsize=2)
def load_cifar(kind: str, root: str, stamp: float) -> RawData:
    layout = CIFAR[kind]
    members = _read_members(Path(root), layout)
    meta = load_pickle(members[layout.meta], f"{root}/{layout.meta}")
    names = meta.get(layout.names_key)
    if not isinstance(names, list) or not names:
        raise DataError(f"{root}/{layout.meta}: missing {layout.names_key!r}.")
    classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    train = _cifar_split(members, layout.train, layout, root, len(classes))
    test = _cifar_split(members, layout.test, layout, root, len(classes))
    readonly(*train, *test)
    return RawData(kind, *train, *test, classes, root)  # type: ignore[arg-type]
