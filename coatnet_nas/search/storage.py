"""Where a study lives: an RDB storage for any SQLAlchemy URL, with heartbeats and retries.

Heartbeats mark a killed worker's trial FAIL and :class:`RetryHeartbeatStaleTrialCallback`
re-queues it, so no trial stays RUNNING forever and none is lost. SQLite gets WAL pragmas so that
several local workers can share one file. Optuna and SQLAlchemy load on the first storage, so
that :data:`DEFAULT_STORAGE` costs nothing to import.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from coatnet_nas._io import ensure_dir
from coatnet_nas.errors import CoatnetError
from coatnet_nas.limits import short_repr

if TYPE_CHECKING:
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

__all__ = ["DEFAULT_STORAGE", "make_storage", "safe_dir_name", "sqlite_file"]

DEFAULT_STORAGE = "sqlite:///coatnet-search.db"
MAX_RETRY = 2  # a trial that killed its worker twice is a candidate's fault, not the machine's
# Tables Optuna's RDB schema creates; a database holding other tables and none of these is
# someone else's, and Optuna would add its tables to it.
OPTUNA_TABLES = frozenset({"studies", "version_info", "alembic_version", "trials"})


def make_storage(
    storage_url: str, heartbeat_interval: int | None = 30, *, create: bool = True
) -> RDBStorage:
    """An RDB storage for ``storage_url``; ``heartbeat_interval=None`` for read-only use.

    ``create=False`` (report, worker: commands that read an existing study) refuses an SQLite
    file that does not exist instead of creating an empty database. A file that is not an
    SQLite database, or an SQLite database of another program (other tables, no Optuna schema),
    is refused before anything is written to it.
    """
    import optuna
    from optuna.storages import RDBStorage

    if not isinstance(storage_url, str) or "://" not in storage_url:
        raise CoatnetError(
            f"storage_url: expected an SQLAlchemy URL like sqlite:///coatnet-search.db or "
            f"postgresql://user@host/db, got {short_repr(storage_url)}.",
            param="storage_url",
        )
    sqlite = storage_url.startswith("sqlite")
    engine_kwargs = {"connect_args": {"timeout": 60}} if sqlite else {}
    if sqlite:
        _check_sqlite_target(storage_url, create)
    kwargs: dict = {}
    if heartbeat_interval:
        kwargs = {
            "heartbeat_interval": heartbeat_interval,
            "grace_period": 2 * heartbeat_interval,
            "heartbeat_stale_trial_callback": _retry_callback(),
        }
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna, and needed here
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = RDBStorage(storage_url, engine_kwargs=engine_kwargs, **kwargs)
        if sqlite:
            _fast_sqlite(storage)
        return storage
    except ImportError as exc:
        raise CoatnetError(
            f"storage_url {short_repr(storage_url)}: the database driver is not installed "
            f"({exc}); for PostgreSQL install psycopg2-binary "
            "(pip install 'coatnet-nas[postgres]').",
            param="storage_url",
        ) from None
    except Exception as exc:  # sqlalchemy.exc.* — bad URL, unreachable server, bad file path
        raise CoatnetError(
            f"storage_url {short_repr(storage_url)}: cannot open the storage "
            f"({type(exc).__name__}: {str(exc)[:300]}).",
            param="storage_url",
        ) from None


def sqlite_file(storage_url: str) -> Path | None:
    """The database file of an ``sqlite://`` URL (None for other databases and in-memory)."""
    return _sqlite_path(storage_url) if storage_url.startswith("sqlite:") else None


def _sqlite_path(storage_url: str) -> Path | None:
    """The file an ``sqlite://`` URL names, or None for an in-memory database."""
    rest = storage_url.split("://", 1)[1]
    rest = rest.split("?", 1)[0]
    if rest in ("", "/", "/:memory:") or rest.startswith("/file::memory:"):
        return None
    return Path(rest.removeprefix("/"))


def _check_sqlite_target(storage_url: str, create: bool) -> None:
    """Refuse an SQLite target that would lose a search or damage someone else's file."""
    path = _sqlite_path(storage_url)
    if path is None:
        raise CoatnetError(
            "storage_url: an in-memory SQLite database cannot hold a search: every worker and "
            "the later report need the same, persistent study; use a file such as "
            "sqlite:///coatnet-search.db.",
            param="storage_url",
        )
    if path.exists():
        _check_existing_sqlite(path)
    elif not create:
        raise CoatnetError(
            f"storage_url: {path}: no such study storage (nothing was created); give the storage "
            "the search was run with.",
            param="storage_url",
        )
    else:
        for parent in path.parents:  # a missing folder under a regular file cannot be created
            if parent.exists():
                if not parent.is_dir():
                    raise CoatnetError(
                        f"storage_url: {path}: {parent} is a file, not a folder.",
                        param="storage_url",
                    )
                break
        ensure_dir(path.parent, param="storage_url")
    folder = path.parent if str(path.parent) else Path(".")
    if create and not os.access(folder, os.W_OK | os.X_OK):
        raise CoatnetError(
            f"storage_url: {folder}: folder is not writable (SQLite keeps its journal next to "
            f"the database); choose a writable place for {path.name}.",
            param="storage_url",
        )


def _check_existing_sqlite(path: Path) -> None:
    """An existing file must be empty, or an SQLite database with Optuna's tables or none.

    The file is read only through SQLite, never with a plain ``open()``: closing any descriptor
    of a database file drops every POSIX lock this process holds on it (a worker opens the
    storage again while the search's own connections are live), and another process then
    checkpoints and deletes the write-ahead log under them, losing committed trials.
    """
    if not path.is_file():
        raise CoatnetError(
            f"storage_url: {path}: exists and is not a regular file.", param="storage_url"
        )
    tables = _sqlite_tables(path)
    if tables and not tables & OPTUNA_TABLES:
        raise CoatnetError(
            f"storage_url: {path}: is another program's SQLite database (tables: "
            f"{', '.join(sorted(tables)[:8])}); refusing to add a study to it (left unchanged).",
            param="storage_url",
        )


def _sqlite_tables(path: Path) -> set[str]:
    """Table names, read through a read-only connection (the file is not modified)."""
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc):
            raise CoatnetError(
                f"storage_url: {path}: exists and is not an SQLite database; refusing to touch "
                "it (give a new file or an existing study storage).",
                param="storage_url",
            ) from None
        raise CoatnetError(
            f"storage_url: {path}: cannot read the SQLite database ({exc}); refusing to use it.",
            param="storage_url",
        ) from None
    return {str(r[0]) for r in rows}


def safe_dir_name(study_name: str) -> str:
    """A folder name for ``study_name`` that stays inside its parent (``runs/<name>``).

    Names that are already safe (letters, digits, ``.``, ``_``, ``-``, not starting with a dot)
    are kept, so existing ``runs/`` folders stay where they are; anything else (``../../x``,
    ``/abs``, ``a/b``, control characters) is mapped to a safe name plus a short hash of the
    original, so two different names never share a folder.
    """
    name = str(study_name)
    if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}", name):
        return name
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:80] or "study"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{safe}-{digest}"


def _fast_sqlite(storage: RDBStorage) -> None:
    """WAL journal + ``synchronous=NORMAL``: each trial makes ~20 small commits, and a full fsync
    per commit dominated the cost of a rejected trial. A killed process still loses nothing and
    the file is never corrupted; only a power cut can drop the last commits."""
    import sqlalchemy

    @sqlalchemy.event.listens_for(storage.engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    storage.engine.dispose()  # connections opened by the constructor predate the pragmas


def _retry_callback() -> RetryHeartbeatStaleTrialCallback:
    """Re-queue a stale trial (same parameters) up to :data:`MAX_RETRY` times."""
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
