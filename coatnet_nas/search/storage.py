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
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from coatnet_nas._io import ensure_dir
from coatnet_nas.errors import CoatnetError
from coatnet_nas.limits import short_repr
from coatnet_nas.search.schema import check_foreign, sql_schema, sqlite_schema

if TYPE_CHECKING:
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

__all__ = ["DEFAULT_STORAGE", "make_storage", "safe_dir_name", "sqlite_file"]

DEFAULT_STORAGE = "sqlite:///coatnet-search.db"
_OPEN_SECONDS = 60.0
MAX_RETRY = 2  # a trial that killed its worker twice is a candidate's fault, not the machine's


def make_storage(
    storage_url: str,
    heartbeat_interval: int | None = 30,
    *,
    create: bool = True,
    retry_seconds: float | None = None,
) -> RDBStorage:
    """An RDB storage for ``storage_url``; ``heartbeat_interval=None`` for read-only use.

    ``create=False`` (report, worker: commands that read an existing study) refuses an SQLite
    file that does not exist instead of creating an empty database. A file that is not an
    SQLite database, or a database of another program (not empty, no Optuna schema: see
    :mod:`~coatnet_nas.search.schema`), is refused before anything is written to it.

    Transient faults (a restarting server, lost connections, serialization failures, a locked
    SQLite file) are retried for ``retry_seconds`` (default ``$COATNET_STORAGE_RETRY`` or 300 s;
    see :mod:`~coatnet_nas.search.resilient`). A storage that runs trials (heartbeats on) keeps
    a local journal of results an outage could not record, and replays earlier ones on opening.
    """
    import optuna

    if not isinstance(storage_url, str) or "://" not in storage_url:
        raise CoatnetError(
            f"storage_url: expected an SQLAlchemy URL like sqlite:///coatnet-search.db or "
            f"postgresql://user@host/db, got {short_repr(storage_url)}.",
            param="storage_url",
        )
    from coatnet_nas.search.journal import Journal, replay
    from coatnet_nas.search.resilient import ResilientStorage, retry_seconds_from_env

    window = retry_seconds_from_env() if retry_seconds is None else retry_seconds
    sqlite = storage_url.startswith("sqlite")
    kwargs: dict = {}
    if heartbeat_interval:
        kwargs = {
            "heartbeat_interval": heartbeat_interval,
            "grace_period": 2 * heartbeat_interval,
            "heartbeat_stale_trial_callback": _retry_callback(),
        }
    try:
        if sqlite:
            _check_sqlite_target(storage_url, create)
            engine_kwargs: dict = {"connect_args": {"timeout": 60}}
        else:
            engine_kwargs = server_engine_kwargs(storage_url)  # parses the URL: inside the try
            _check_server_database(storage_url, window)
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna, and needed here
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = ResilientStorage(
                storage_url,
                engine_kwargs=engine_kwargs,
                retry_seconds=window,
                journal=Journal(storage_url) if heartbeat_interval else None,
                **kwargs,
            )
        if sqlite:
            _fast_sqlite(storage)
        if heartbeat_interval:  # a process that runs trials records what an outage kept aside
            replay(storage)
        return storage
    except CoatnetError:
        raise
    except ImportError as exc:
        raise CoatnetError(
            f"storage_url {short_repr(_hide_password(storage_url))}: the database driver is not "
            f"installed ({exc}); for PostgreSQL (postgresql:// is psycopg 3, "
            "postgresql+psycopg2:// psycopg2) pip install 'coatnet-nas[postgres]'.",
            param="storage_url",
        ) from None
    except Exception as exc:  # sqlalchemy.exc.* — bad URL, unreachable server, bad file path
        raise CoatnetError(
            f"storage_url {short_repr(_hide_password(storage_url))}: cannot open the storage "
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
    """An existing file must be empty, or an SQLite database that is empty or Optuna's.

    The file is read only through SQLite, never with a plain ``open()``: closing any descriptor
    of a database file drops every POSIX lock this process holds on it (a worker opens the
    storage again while the search's own connections are live), and another process then
    checkpoints and deletes the write-ahead log under them, losing committed trials.
    """
    if not path.is_file():
        raise CoatnetError(
            f"storage_url: {path}: exists and is not a regular file.", param="storage_url"
        )
    check_foreign(sqlite_schema(path), str(path), "SQLite")


# libpq's connection settings (psycopg2 and psycopg 3 both pass them on): a connection attempt
# gives up after 10 s instead of waiting on a host that drops packets (Linux retries a SYN for
# ~2 min), and TCP keepalives find a connection whose server vanished without closing it.
_POSTGRES_CONNECT = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def server_engine_kwargs(storage_url: str) -> dict:
    """SQLAlchemy engine settings for a server database: connections pinged before use (a
    restarted database's dead ones are replaced) and, for PostgreSQL, bounded connects and
    keepalives; a setting given in the URL's query (``?connect_timeout=3``) wins."""
    from sqlalchemy.engine import make_url

    url = make_url(storage_url)
    kwargs: dict = {"pool_pre_ping": True}
    if url.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {k: v for k, v in _POSTGRES_CONNECT.items() if k not in url.query}
    return kwargs


def _check_server_database(storage_url: str, retry_seconds: float) -> None:
    """A server database (PostgreSQL, MySQL) must be empty or Optuna's; read before any write."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(storage_url, **server_engine_kwargs(storage_url))
    try:
        # A server never reached yet may be restarting, or the URL may be wrong: wait a
        # minute at most before saying so (a worker restarted during an outage still waits).
        schema = _retry_open(lambda: sql_schema(engine), min(retry_seconds, _OPEN_SECONDS))
    finally:
        engine.dispose()
    check_foreign(schema, _hide_password(storage_url), engine.dialect.name)


def _retry_open(fn, retry_seconds: float):
    """``fn()``, retried while the database is unreachable (a server restarting) for the window."""
    from coatnet_nas.search.resilient import is_transient

    deadline, delay = time.monotonic() + retry_seconds, 0.2
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(2 * delay, 5.0)


def _hide_password(url: str) -> str:
    return re.sub(r"//([^:@/]*):[^@/]*@", r"//\1:***@", url)


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
