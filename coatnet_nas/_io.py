"""Writing results safely: atomic file writes, JSON scrubbing and figures, in one place.

A study, a comparison or a checkpoint is read back later (resume, report), so a file must never
be seen half-written: every writer here writes a temporary file in the target's directory and
renames it into place (atomic within one file system). A target that exists but is not a regular
file (a device node, a FIFO, a directory) is refused rather than replaced.

A full or failing disk (ENOSPC, a quota, EIO) leaves the previous file as it was and raises one
:class:`~coatnet_nas.errors.DiskFullError` naming the file, the space it needs and the space free.
Writers that do not raise ``OSError`` on a full disk (torch's zip writer says ``unexpected pos``)
are recognised by the file system having no room left when they fail. Files filled through a
memory map are reserved first (:func:`reserve_file`): a full disk under a map is a ``SIGBUS``,
not an error.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coatnet_nas.errors import CoatnetError, DiskFullError

__all__ = [
    "allocate_file",
    "atomic_write",
    "atomic_write_json",
    "atomic_write_text",
    "check_output_file",
    "disk_error",
    "ensure_dir",
    "free_bytes",
    "json_safe",
    "pyplot",
    "reserve_file",
    "save_figure",
    "write_buffered",
    "written_size",
]

Size = int | Callable[[], int] | None  # bytes a write needs, or how to count them on failure
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_FAILING = {errno.EIO}


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats turned into None (JSON has no NaN) and tuples into lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def ensure_dir(path: str | Path, *, param: str | None = None) -> Path:
    """Create ``path`` (and parents) or raise a :class:`CoatnetError` that says why not."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CoatnetError(
            f"{_named(param)}{path}: exists and is not a directory.", param=param
        ) from None
    except OSError as exc:
        raise CoatnetError(
            f"{_named(param)}{path}: cannot create the folder ({exc.strerror or exc}).",
            param=param,
        ) from None
    return path


def check_output_file(path: str | Path, *, param: str | None = None) -> Path:
    """Refuse an output target that cannot be written as a regular file, before any work.

    The target may not exist yet (its folder is created); if it exists it must be a regular file.
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise CoatnetError(
            f"{_named(param)}{path}: is {kind}; give a file path to write to.", param=param
        )
    parent = ensure_dir(path.parent, param=param)
    if not os.access(parent, os.W_OK):
        raise CoatnetError(f"{_named(param)}{parent}: folder is not writable.", param=param)
    return path


def atomic_write(
    path: str | Path,
    write: Callable[[Path], None],
    *,
    param: str | None = None,
    size: Size = None,
) -> Path:
    """Call ``write(tmp)`` to fill a temporary file, then rename it over ``path``.

    ``size`` is the bytes the file will take (or a function that counts them, called only if the
    disk turns out to be full), for the :class:`DiskFullError` message.
    """
    path = check_output_file(path, param=param)
    try:  # a folder that passes the access check can still refuse files (/proc, a full disk)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        if exc.errno in _FULL | _FAILING:
            raise disk_error(path, exc.errno, _needed(size, 0, path), param=param) from None
        raise CoatnetError(
            f"{_named(param)}{path}: cannot write ({exc.strerror or exc}).", param=param
        ) from None
    try:  # mkstemp makes 0600; give the file the mode a plain open() would (or the old file's)
        os.fchmod(fd, _file_mode(path))
    finally:
        os.close(fd)
    tmp = Path(tmp_name)
    failed: tuple[int | None, str, int] | None = None
    try:
        write(tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        code = _disk_errno(exc, tmp)
        if code is None and not isinstance(exc, OSError):
            raise  # a bug in the writer, not the disk
        failed = (code, str(getattr(exc, "strerror", None) or exc), _size_of(tmp))
    finally:
        tmp.unlink(missing_ok=True)
    # Out of the handler: the traceback no longer holds the writer's open file, so the space
    # of the unlinked temporary is free again when the message measures it.
    if failed is not None:
        code, reason, written = failed
        if code is not None:
            raise disk_error(path, code, _needed(size, written, path), param=param)
        raise CoatnetError(f"{_named(param)}{path}: cannot write ({reason}).", param=param)
    return path


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
        path=str(path), needed=needed, free=free, param=param,
    )  # fmt: skip


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
            raise disk_error(path, exc.errno, _size_of(path), param=param) from None
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


def _disk_errno(exc: BaseException, tmp: Path) -> int | None:
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


def _needed(size: Size, written: int, path: Path) -> int | None:
    """The file's size: given, counted, or at least what was written / what the old file took."""
    if callable(size):
        try:
            return size()
        except Exception:  # counting is only for the message
            size = None
    if isinstance(size, int):
        return size
    return max(written, _size_of(path)) or None


def _size_of(path: Path) -> int:
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


def _file_mode(path: Path) -> int:
    """The existing file's permission bits, else 0o666 less the process umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_text(path: str | Path, text: str, *, param: str | None = None) -> Path:
    data = text.encode("utf-8")
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), param=param, size=len(data))


def atomic_write_json(path: str | Path, obj: Any, *, param: str | None = None) -> Path:
    """JSON with NaN/inf as null, indented for people."""
    return atomic_write_text(path, json.dumps(json_safe(obj), indent=2) + "\n", param=param)


def pyplot() -> Any:
    """matplotlib's pyplot on the non-interactive Agg backend (no display needed)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, *, dpi: int = 120, param: str | None = None) -> Path:
    """Save and close a matplotlib figure atomically; the format follows the file suffix."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    try:
        return atomic_write(
            path,
            lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight"),
            param=param,
        )
    finally:
        pyplot().close(fig)


def _named(param: str | None) -> str:
    return f"{param} " if param else ""
