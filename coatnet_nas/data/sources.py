"""Dataset sources: read files on disk (or generate) into uint8 NCHW numpy arrays.

Every reader returns a :class:`RawData` at the source's native size and channels; resizing,
channel adaptation, splitting and moving to a device happen once, later, in
:mod:`coatnet_nas.data.tensors`. Names accepted by :func:`load_raw` (see ``DATASETS``):

* ``synthetic`` / ``synthetic:N`` — the procedural task of :mod:`coatnet_nas.data.synthetic`;
* ``fashion-mnist`` — the standard IDX files (``.gz`` or uncompressed);
* ``cifar10`` / ``cifar100`` — the official python-pickle archives, extracted or as the
  ``.tar.gz`` itself (read in place, no extraction needed);
* ``folder:<path>`` — one sub-folder per class (or ``train/`` + ``val/``/``test/`` splits, each
  with a sub-folder per class), read with Pillow.
"""

from __future__ import annotations

import difflib
import functools
import gzip
import io
import pickle
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coatnet_nas.data import locate, synthetic
from coatnet_nas.errors import DataError

DATASETS = ("synthetic", "fashion-mnist", "cifar10", "cifar100", "folder:<path>")
_ALIASES = {
    "fashion-mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
    "cifar10": "cifar10", "cifar-10": "cifar10", "cifar100": "cifar100", "cifar-100": "cifar100",
    "synthetic": "synthetic", "folder": "folder",
}  # fmt: skip
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


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
        raise DataError(f"unknown dataset {name!r}{hint}; available: {', '.join(DATASETS)}.")
    if kind == "folder" and not arg.strip():
        raise DataError(
            "dataset 'folder' needs a path: folder:/path/to/images (a sub-folder per class)."
        )
    return kind, (arg.strip() if sep else None)


def load_raw(
    name: str, data_dir: str | Path | None = None, image_size: tuple[int, int] = (32, 32)
) -> RawData:
    """Read (or generate) dataset ``name``; ``image_size`` only matters for image folders.

    Results are cached per process (read-only arrays), because a search prepares the same data
    many times.
    """
    kind, arg = parse_name(name)
    if kind == "synthetic":
        return _synthetic(synthetic.parse_count(arg))
    if kind == "folder":
        root = Path(arg or "").expanduser().resolve()
        return _folder(str(root), tuple(image_size), _stamp(root))
    path, searched = find_dataset(kind, data_dir)
    if path is None:
        wanted, hint = _WANTED[kind]
        raise DataError(locate.missing_message(kind, wanted, searched, hint=hint), param="data_dir")
    if kind == "fashion-mnist":
        return _fashion_mnist(str(path.resolve()), _stamp(path))
    return _cifar(kind, str(path.resolve()), _stamp(path))


_WANTED = {
    "fashion-mnist": (
        "train-images-idx3-ubyte(.gz) and train-labels-idx1-ubyte(.gz)",
        ", or install Debian's dataset-fashion-mnist package",
    ),
    "cifar10": ("cifar-10-batches-py/ or cifar-10-python.tar.gz", ""),
    "cifar100": ("cifar-100-python/ or cifar-100-python.tar.gz", ""),
}


def find_dataset(name: str, data_dir: str | Path | None = None) -> tuple[Path | None, list[Path]]:
    """Where the files of an on-disk dataset are (or None), and every place searched."""
    kind, _ = parse_name(name)
    if kind == "fashion-mnist":
        return locate.find_dir(kind, _fmnist_complete, data_dir)
    if kind in CIFAR:
        return locate.find_dir(kind, CIFAR[kind].present_in, data_dir)
    raise DataError(f"dataset {name!r} is not read from a data directory.")


def _stamp(path: Path) -> float:
    """Invalidates the cache when a directory's contents change."""
    try:
        return max([path.stat().st_mtime, *(p.stat().st_mtime for p in path.iterdir())])
    except OSError:
        return 0.0


def _readonly(*arrays: np.ndarray | None) -> None:
    for a in arrays:
        if a is not None:
            a.setflags(write=False)


# --- synthetic -------------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _synthetic(n: int) -> RawData:
    train_x, train_y = synthetic.make_synthetic(n, seed=0)
    test_x, test_y = synthetic.make_synthetic(max(len(synthetic.CLASSES), n // 6), seed=1)
    _readonly(train_x, train_y, test_x, test_y)
    return RawData(
        f"synthetic:{n}" if n != synthetic.DEFAULT_TRAIN else "synthetic",
        train_x,
        train_y,
        test_x,
        test_y,
        synthetic.CLASSES,
        "generated (seeded)",
    )


# --- Fashion-MNIST (IDX) ---------------------------------------------------------------------
FMNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not, detected from its magic bytes)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
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


def _fmnist_complete(path: Path) -> bool:
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
def _fashion_mnist(root: str, stamp: float) -> RawData:
    path = Path(root)
    train = _read_idx_pair(path, "train")
    assert train is not None  # found by _fmnist_complete
    test = _read_idx_pair(path, "t10k") or (None, None)
    _readonly(*train, *test)
    return RawData("fashion-mnist", *train, *test, FMNIST_CLASSES, root)


# --- CIFAR (python pickles) ------------------------------------------------------------------
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
        "cifar-10-batches-py", "cifar-10-python.tar.gz",
        tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
        "batches.meta", "label_names", "labels",
    ),
    "cifar100": CifarLayout(
        "cifar-100-python", "cifar-100-python.tar.gz", ("train",), ("test",),
        "meta", "fine_label_names", "fine_labels",
    ),
}  # fmt: skip


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
def _cifar(kind: str, root: str, stamp: float) -> RawData:
    layout = CIFAR[kind]
    members = _read_members(Path(root), layout)
    meta = load_pickle(members[layout.meta], f"{root}/{layout.meta}")
    names = meta.get(layout.names_key)
    if not isinstance(names, list) or not names:
        raise DataError(f"{root}/{layout.meta}: missing {layout.names_key!r}.")
    classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    train = _cifar_split(members, layout.train, layout, root, len(classes))
    test = _cifar_split(members, layout.test, layout, root, len(classes))
    _readonly(*train, *test)
    return RawData(kind, *train, *test, classes, root)  # type: ignore[arg-type]


# --- image folders ---------------------------------------------------------------------------
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
def _folder(root_text: str, size: tuple[int, int], stamp: float) -> RawData:
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
    _readonly(*train, *test)
    return RawData(f"folder:{root}", *train, *test, tuple(classes), str(root))  # type: ignore[arg-type]
