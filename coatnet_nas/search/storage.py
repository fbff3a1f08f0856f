"""Where a study lives: an RDB storage for any SQLAlchemy URL, with heartbeats and retries.

Heartbeats mark a killed worker's trial FAIL and :class:`RetryHeartbeatStaleTrialCallback`
re-queues it, so no trial stays RUNNING forever and none is lost. SQLite gets WAL pragmas so that
several local workers can share one file. Optuna and SQLAlchemy load on the first storage, so
that :data:`DEFAULT_STORAGE` costs nothing to import.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from coatnet_nas.errors import CoatnetError

if TYPE_CHECKING:
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

__all__ = ["DEFAULT_STORAGE", "make_storage"]

DEFAULT_STORAGE = "sqlite:///coatnet-search.db"
MAX_RETRY = 2  # a trial that killed its worker twice is a candidate's fault, not the machine's


def make_storage(storage_url: str, heartbeat_interval: int | None = 30) -> RDBStorage:
    """An RDB storage for ``storage_url``; ``heartbeat_interval=None`` for read-only use."""
    import optuna
    from optuna.storages import RDBStorage

    if "://" not in storage_url:
        raise CoatnetError(
            f"storage_url: expected an SQLAlchemy URL like sqlite:///coatnet-search.db or "
            f"postgresql://user@host/db, got {storage_url!r}.",
            param="storage_url",
        )
    sqlite = storage_url.startswith("sqlite")
    engine_kwargs = {"connect_args": {"timeout": 60}} if sqlite else {}
    if storage_url.startswith("sqlite:///") and storage_url != "sqlite:///:memory:":
        Path(storage_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
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
            f"storage_url {storage_url!r}: the database driver is not installed ({exc}); for "
            "PostgreSQL install psycopg2-binary (pip install 'coatnet-nas[postgres]').",
            param="storage_url",
        ) from None
    except Exception as exc:  # sqlalchemy.exc.* — bad URL, unreachable server, bad file path
        raise CoatnetError(
            f"storage_url {storage_url!r}: cannot open the storage ({type(exc).__name__}: {exc}).",
            param="storage_url",
        ) from None


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
