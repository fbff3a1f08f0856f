"""Disk space: what a write the file system refused needs, and keeping it from a memory map.

A full or failing disk (ENOSPC, a quota, EIO) becomes one
:class:`~coatnet_nas.errors.DiskFullError` naming the file, the space it needs and the space
free (:func:`disk_error`). Writers that do not raise ``OSError`` on a full disk (torch's zip
writer says ``unexpected pos``) are recognised by the file system having no room left when they
fail (:func:`disk_errno`). Files filled through a memory map are allocated first
(:func:`allocate_file`, :func:`reserve_file`): a full disk under a map is a ``SIGBUS``, not an
error. :mod:`coatnet_nas._io` writes through these.
"""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coatnet_nas.errors import CoatnetError, DiskFullError

__all__ = [
    "DISK_ERRNOS",
    "Size",
    "allocate_file",
    "disk_errno",
    "disk_error",
    "free_bytes",
    "needed_bytes",
    "reserve_file",
    "size_of",
    "write_buffered",
    "written_size",
]

Size = int | Callable[[], int] | None  # bytes a write needs, or how to count them on failure
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_FAILING = {errno.EIO}
DISK_ERRNOS = frozenset(_FULL | _FAILING)


def disk_error(
    path: Path, code: int, needed: int | None, *, param: str | None = None
) -> DiskFullError:
    """One paragraph about a write the file system refused: which file, how much, how much free."""
    free = free_bytes(path.parent)
    need = f"it needs about {_bytes(needed)}" if needed else "it needs more room"
    have = f"{_bytes(free)} free" if free is not None else "free space unknown"
    if code in _FAILING:
        what = "the disk reported an input/output error (a failing disk or a lost network mount)"
    elif code == errno.EDQUOT:
        what = "your disk quota is used up"
    elif code == errno.EFBIG:
        what = "the file is larger than this file system or your limits allow"
    else:
        what = "the file system is full"
    return DiskFullError(
        f"{_named(param)}{path}: cannot write it: {what} ({os.strerror(code)}); {need}, {have} "
        "there. Nothing was "
        "replaced: the previous file, if any, is intact. Free some space (or write elsewhere) "
        "and run again.",
        path=str(path),
        needed=needed,
        free=free,
        param=param,
    )


def free_bytes(folder: str | Path) -> int | None:
    """Bytes an unprivileged writer may still use on ``folder``'s file system."""
    try:
        stat = os.statvfs(folder)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def allocate_file(path: str | Path) -> None:
    """Allocate every block of ``path`` (as long as it is) now, so that writes through a memory
    map cannot hit a full disk later (that kills the process with SIGBUS). Raises ``OSError``
    (inside :func:`atomic_write`'s ``write``, that becomes a :class:`DiskFullError`)."""
    length = Path(path).stat().st_size
    fd = os.open(path, os.O_RDWR)
    try:
        if length:
            os.posix_fallocate(fd, 0, length)
    except OSError as exc:
        if exc.errno not in {errno.EOPNOTSUPP, errno.EINVAL}:  # no fallocate there: go on
            raise
    finally:
        os.close(fd)


def reserve_file(path: str | Path, *, param: str | None = None) -> None:
    """:func:`allocate_file` for a file written in place (not through :func:`atomic_write`)."""
    path = Path(path)
    try:
        allocate_file(path)
    except OSError as exc:
        if exc.errno in _FULL | _FAILING:
            raise disk_error(path, exc.errno, size_of(path), param=param) from None
        raise CoatnetError(
            f"{_named(param)}{path}: cannot write ({exc.strerror or exc}).", param=param
        ) from None


def write_buffered(path: str | Path, save: Callable[[Any], None]) -> None:
    """``save(f)`` into memory, then the bytes to ``path`` with Python's own I/O, so that a full
    disk is an ``OSError`` (torch's C++ writers abort the process, or raise a bare
    ``RuntimeError``, when a write fails). For files written once, not per step."""
    buffer = io.BytesIO()
    save(buffer)
    with open(path, "wb") as f:
        f.write(buffer.getbuffer())


def written_size(write: Callable[[Any], None]) -> int:
    """The bytes ``write(f)`` puts into a file object, counted without storing them."""
    counter = _Counter()
    write(counter)
    return counter.n


class _Counter:
    n = 0

    def write(self, data: Any) -> int:
        self.n += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def disk_errno(exc: BaseException, tmp: Path) -> int | None:
    """The errno of a full or failing disk behind ``exc``, if that is what it was."""
    seen: BaseException | None = exc
    while seen is not None:  # the error itself or one it was raised from
        if isinstance(seen, OSError) and seen.errno in _FULL | _FAILING:
            return seen.errno
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, RuntimeError) or (isinstance(exc, OSError) and exc.errno is None):
        free = free_bytes(tmp.parent)  # torch's writer: "unexpected pos", "iostream error"
        if free is not None and free < 64 * 1024:
            return errno.ENOSPC
    return None


def needed_bytes(size: Size, written: int, path: Path) -> int | None:
    """The file's size: given, counted, or at least what was written / what the old file took."""
    if callable(size):
        try:
            return size()
        except Exception:  # counting is only for the message
            size = None
    if isinstance(size, int):
        return size
    return max(written, size_of(path)) or None


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _bytes(n: int | None) -> str:
    if n is None:
        return "an unknown amount"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _named(param: str | None) -> str:
    return f"{param} " if param else ""
