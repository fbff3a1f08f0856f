"""Writing results safely: atomic file writes, JSON scrubbing and figures, in one place.

A study, a comparison or a checkpoint is read back later (resume, report), so a file must never
be seen half-written: every writer here writes a temporary file in the target's directory and
renames it into place (atomic within one file system). A target that exists but is not a regular
file (a device node, a FIFO, a directory) is refused rather than replaced.

A full or failing disk leaves the previous file as it was and raises one
:class:`~coatnet_nas.errors.DiskFullError` (:mod:`coatnet_nas._space`).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coatnet_nas._space import (
    DISK_ERRNOS,
    Size,
    allocate_file,
    disk_errno,
    disk_error,
    free_bytes,
    needed_bytes,
    reserve_file,
    size_of,
    write_buffered,
    written_size,
)
from coatnet_nas.errors import CoatnetError

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
        if exc.errno in DISK_ERRNOS:
            raise disk_error(path, exc.errno, needed_bytes(size, 0, path), param=param) from None
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
        code = disk_errno(exc, tmp)
        if code is None and not isinstance(exc, OSError):
            raise  # a bug in the writer, not the disk
        failed = (code, str(getattr(exc, "strerror", None) or exc), size_of(tmp))
    finally:
        tmp.unlink(missing_ok=True)
    # Out of the handler: the traceback no longer holds the writer's open file, so the space
    # of the unlinked temporary is free again when the message measures it.
    if failed is not None:
        code, reason, written = failed
        if code is not None:
            raise disk_error(path, code, needed_bytes(size, written, path), param=param)
        raise CoatnetError(f"{_named(param)}{path}: cannot write ({reason}).", param=param)
    return path


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
