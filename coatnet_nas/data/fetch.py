"""``coatnet data fetch``: download official archives, verify them, never leave a partial file.

Each file streams into a hidden temporary file in the destination directory while its MD5 is
computed (the checksum the dataset authors publish); only a complete, verified file is renamed
into place (``os.replace`` is atomic within a directory). Any failure, interruption included,
removes the temporary file. Files already present with the right checksum are not downloaded
again. CIFAR archives stay packed: the loader reads the ``.tar.gz`` in place.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from coatnet_nas._space import DISK_ERRNOS, disk_error
from coatnet_nas.data.locate import cache_root
from coatnet_nas.data.sources import parse_name
from coatnet_nas.errors import DataError

MIRROR_ENV = "COATNET_DATA_MIRROR"
_CHUNK = 1 << 16

#: ``progress(filename, bytes_done, bytes_total_or_None)``, called as bytes arrive.
Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class Resource:
    """One file of a dataset: where it comes from and its published MD5."""

    filename: str
    url: str
    md5: str


_FMNIST = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_TORONTO = "https://www.cs.toronto.edu/~kriz/"

# MD5s as published by the authors: the Fashion-MNIST README and the CIFAR page.
RESOURCES: dict[str, tuple[Resource, ...]] = {
    "fashion-mnist": (
        Resource(
            "train-images-idx3-ubyte.gz",
            _FMNIST + "train-images-idx3-ubyte.gz",
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        ),
        Resource(
            "train-labels-idx1-ubyte.gz",
            _FMNIST + "train-labels-idx1-ubyte.gz",
            "25c81989df183df01b3e8a0aad5dffbe",
        ),
        Resource(
            "t10k-images-idx3-ubyte.gz",
            _FMNIST + "t10k-images-idx3-ubyte.gz",
            "bef4ecab320f06d8554ea6380940ec79",
        ),
        Resource(
            "t10k-labels-idx1-ubyte.gz",
            _FMNIST + "t10k-labels-idx1-ubyte.gz",
            "bb300cfdad3c16e7a12a480ee83cd310",
        ),
    ),
    "cifar10": (
        Resource(
            "cifar-10-python.tar.gz",
            _TORONTO + "cifar-10-python.tar.gz",
            "c58f30108f718f92721af3b95e74349a",
        ),
    ),
    "cifar100": (
        Resource(
            "cifar-100-python.tar.gz",
            _TORONTO + "cifar-100-python.tar.gz",
            "eb9058c3a382ffc7106e4002c42a8d85",
        ),
    ),
}


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_dataset(
    name: str,
    dest: str | Path | None = None,
    *,
    mirror: str | None = None,
    resources: Sequence[Resource] | None = None,
    progress: Progress | None = None,
    force: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download dataset ``name`` into ``dest`` (default: the user cache dir) and return it.

    ``mirror`` (or ``$COATNET_DATA_MIRROR``) replaces the base URL: files are fetched from
    ``<mirror>/<filename>`` and still verified against the official checksums. ``resources``
    overrides the file list (for private mirrors of other data, and for tests).
    """
    kind, _ = parse_name(name)
    if resources is None:
        if kind not in RESOURCES:
            raise DataError(
                f"dataset {name!r} cannot be fetched; downloadable: {', '.join(RESOURCES)} "
                "(synthetic needs no files, folder:<path> reads your own images)."
            )
        resources = RESOURCES[kind]
    target = Path(dest).expanduser() if dest is not None else cache_root() / kind
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {target} ({exc.strerror}).") from None
    for res in resources:
        final = target / res.filename
        if not force and final.is_file() and md5_of(final) == res.md5:
            if progress is not None:
                size = final.stat().st_size
                progress(res.filename, size, size)
            continue
        url = mirror.rstrip("/") + "/" + res.filename if mirror else res.url
        download(url, final, res.md5, progress=progress, timeout=timeout)
    return target


def download(
    url: str, target: Path, md5: str, *, progress: Progress | None = None, timeout: float = 60.0
) -> None:
    """Stream ``url`` to ``target`` atomically, verifying its MD5; raise :class:`DataError`."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    total: int | None = None
    full: int | None = None
    try:
        digest = hashlib.md5(usedforsecurity=False)
        request = urllib.request.Request(url, headers={"User-Agent": "coatnet-nas"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            if progress is not None:
                progress(target.name, 0, total)
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(target.name, done, total)
            out.flush()
            os.fsync(out.fileno())
        if total is not None and done != total:
            raise DataError(f"{url}: download truncated ({done} of {total} bytes); try again.")
        got = digest.hexdigest()
        if got != md5:
            raise DataError(
                f"{url}: checksum mismatch (MD5 {got}, expected {md5}); the file was discarded. "
                "The download was corrupted or the mirror serves a different file."
            )
        os.replace(tmp, target)
    except urllib.error.HTTPError as exc:
        raise DataError(f"{url}: download failed (HTTP {exc.code} {exc.reason}).") from None
    except urllib.error.URLError as exc:
        raise DataError(
            f"{url}: download failed ({exc.reason}); check the network or use another mirror.",
            param="mirror",
        ) from None
    except (OSError, TimeoutError, http.client.HTTPException) as exc:
        full = getattr(exc, "errno", None) if getattr(exc, "errno", None) in DISK_ERRNOS else None
        if full is None:
            raise DataError(f"{url}: download failed ({exc}).") from None
    finally:
        tmp.unlink(missing_ok=True)
    if full is not None:  # measured once the partial file is gone
        raise disk_error(target, full, total)
