"""A study storage that outlives database blips: transient faults are retried, not fatal.

A cluster's database restarts, fails over, drops idle connections and, under concurrent
writers, aborts transactions (PostgreSQL serialization failures and deadlocks; ``database is
locked`` on SQLite). Optuna turns each of these into a ``StorageInternalError`` in whatever
thread met it: a heartbeat thread printed a 60-line traceback and a trial whose training had
finished ended FAIL. :class:`ResilientStorage` is Optuna's ``RDBStorage`` with every storage
call retried with bounded backoff (connections are pre-pinged, so a restarted server's dead
ones are replaced) for :attr:`~ResilientStorage.retry_seconds` counted from the start of the
outage (:data:`RETRY_ENV`, default :data:`DEFAULT_RETRY_SECONDS`):

- a heartbeat is best effort: a missed one is skipped quietly (the next one tries again), and
  for a grace period after an outage no trial is declared stale (its heartbeats could not be
  written while the database was away, by any worker);
- past the window the outage is :class:`StorageUnavailable` (one paragraph, exit 2), and the
  writes of trials this process runs go to a local :class:`~coatnet_nas.search.journal.Journal`
  instead, so a training that finishes meanwhile keeps its result: the next process that opens
  the storage records it (:func:`~coatnet_nas.search.journal.replay`).

(Just over ~300 lines: the fault classification, the retry loop and the calls with their own
rules are one policy, read together.)
"""

from __future__ import annotations

import functools
import os
import random
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from coatnet_nas.errors import CoatnetError
from coatnet_nas.search.journal import Journal, apply_writes

__all__ = [
    "DEFAULT_RETRY_SECONDS",
    "RETRY_ENV",
    "ResilientStorage",
    "StorageUnavailable",
    "check_retry_seconds",
    "is_transient",
    "retry_seconds_from_env",
]

RETRY_ENV = "COATNET_STORAGE_RETRY"
DEFAULT_RETRY_SECONDS = 300.0
_MAX_BACKOFF = 5.0

# Storage calls a trial's owner makes that the journal can hold while the database is away.
_JOURNALED = (
    "set_trial_user_attr",
    "set_trial_system_attr",
    "set_trial_intermediate_value",
    "set_trial_state_values",
)
# Everything else that reaches the database (what Optuna's _CachedStorage calls included).
_RETRIED = (
    "create_new_study",
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "get_all_studies",
    "create_new_trial",
    "_create_new_trial",
    "set_trial_param",
    "_set_trial_param",
    "get_trial_param",
    "get_trial_id_from_study_id_trial_number",
    "get_trial",
    "get_all_trials",
    "_get_trials",
    "get_best_trial",
    "_get_best_trial_id",
    "_get_stale_trial_ids",
)


class StorageUnavailable(CoatnetError):
    """The database stayed unreachable for longer than the retry window."""


def retry_seconds_from_env(default: float = DEFAULT_RETRY_SECONDS) -> float:
    """The retry window from :data:`RETRY_ENV` (seconds, or ``90s``/``5m``/``1h``)."""
    text = os.environ.get(RETRY_ENV)
    if not text:
        return default
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", text.lower())
    if not match:
        raise CoatnetError(
            f"${RETRY_ENV}: expected a duration like 300, 90s, 5m or 1h, got {text[:40]!r}."
        )
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def check_retry_seconds(value: float | None, param: str = "storage_retry_seconds") -> None:
    """Refuse a retry window that is not a finite number of seconds >= 0 (None: the default)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e9:
        raise CoatnetError(
            f"{param}: expected seconds >= 0 (how long a storage outage is retried before the "
            f"run stops), got {str(value)[:40]!r}.",
            param=param,
        )


def is_transient(exc: BaseException) -> bool:
    """A lost connection, a server restart, a serialization failure or deadlock, a locked
    SQLite file: worth trying again (a constraint violation or bad data is not)."""
    import sqlalchemy.exc as sa

    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, sa.IntegrityError):
            return False
        if isinstance(error, sa.DisconnectionError):
            return True
        if isinstance(error, sa.DBAPIError) and error.connection_invalidated:
            return True
        if isinstance(error, sa.PendingRollbackError):
            return True  # a connection lost mid-transaction; the next session starts clean
        if isinstance(error, (sa.OperationalError, sa.InterfaceError)):
            return _transient_cause(error)
        if isinstance(error, sa.DBAPIError):  # InternalError, DatabaseError, ...: only a lost
            return _transient_cause(error, connection_only=True)  # connection says transient
        error = error.__cause__ or error.__context__
    return False


# SQLSTATE classes worth waiting out: connection exceptions, transaction rollback
# (serialization failure, deadlock), insufficient resources (too many connections), operator
# intervention (shutdown, starting up), system errors.
_TRANSIENT_SQLSTATE = ("08", "40", "53", "57", "58")
# Without a SQLSTATE (no server reached): a wrong URL fails the same way every time.
_PERMANENT = re.compile(
    r"authentication|password|does not exist|no pg_hba|permission denied|unknown host|"
    r"could not translate host name|name or service not known|invalid dsn|no such table|"
    r"unable to open database file",
    re.IGNORECASE,
)


_CONNECTION = re.compile(
    r"connection|closed|terminat|shut ?down|reset by peer|broken pipe|server", re.IGNORECASE
)


def _transient_cause(error: BaseException, connection_only: bool = False) -> bool:
    orig = getattr(error, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(code, str) and code:
        return code[:2] in _TRANSIENT_SQLSTATE
    text = str(orig if orig is not None else error)
    if "sqlite" in type(orig).__module__:
        return "locked" in text or "busy" in text
    if connection_only:
        return bool(_CONNECTION.search(text)) and not _PERMANENT.search(text)
    return not _PERMANENT.search(text)


class ResilientStorage(RDBStorage):
    """Optuna's RDB storage with transient faults retried (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *args: Any,
        retry_seconds: float | None = None,
        journal: Journal | None = None,
        **kwargs: Any,
    ) -> None:
        self.retry_seconds = retry_seconds_from_env() if retry_seconds is None else retry_seconds
        self.journal = journal
        self._init_outage()
        self._call(lambda: RDBStorage.__init__(self, url, *args, **kwargs))

    def _init_outage(self) -> None:
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._recovered_at: float | None = None
        self._given_up = False
        self._owned: set[int] = set()

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        for key in ("_lock", "_down_since", "_recovered_at", "_given_up", "_owned", "journal"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        self._init_outage()
        self.journal = None
        self._call(lambda: RDBStorage.__setstate__(self, state))

    # -- the retry loop --------------------------------------------------------------------
    def _call(self, fn: Callable[[], Any], finishing: bool = False) -> Any:
        delay, failed = 0.2, False
        while True:
            try:
                result = fn()
            except Exception as exc:
                if finishing and failed and isinstance(exc, UpdateFinishedTrialError):
                    raise _AlreadyDone from exc  # the failed attempt had committed
                if not is_transient(exc):
                    raise
                failed = True
                left = self._outage_left()
                if left <= 0:
                    raise self._unavailable(exc) from None
                time.sleep(min(delay * (1 + random.random()), left))  # jitter: workers spread
                delay = min(2 * delay, _MAX_BACKOFF)
                continue
            self._back()
            return result

    def _outage_left(self) -> float:
        with self._lock:
            now = time.monotonic()
            if self._down_since is None:
                self._down_since = now
            left = self.retry_seconds - (now - self._down_since)
            self._given_up = left <= 0
            return left

    def _back(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is not None:
                self._down_since, self._given_up = None, False
                self._recovered_at = time.monotonic()

    def _unavailable(self, exc: BaseException) -> StorageUnavailable:
        url = self.url if "@" not in self.url else re.sub(r"//[^@/]*@", "//***@", self.url)
        cause = str(getattr(exc, "orig", None) or exc.__cause__ or exc).strip().splitlines()
        kept = (
            f" Finished results are kept in {self.journal.folder} and recorded by the "
            "next run against this storage."
            if self.journal is not None
            else ""
        )
        return StorageUnavailable(
            f"storage_url {url}: the database was unreachable for {self.retry_seconds:g} s "
            f"(last error: {(cause[0] if cause else type(exc).__name__)[:200]}); stopped.{kept} "
            f"Run the same command when the database is back (retry window: ${RETRY_ENV}).",
            param="storage_url",
        )

    @property
    def offline(self) -> bool:
        """Whether this process gave up on the database (until a call succeeds again)."""
        return self._given_up

    def recently_recovered(self) -> bool:
        """Within a grace period after an outage (heartbeats could not be written in it)."""
        grace = self.grace_period or 2 * (self.heartbeat_interval or 0)
        at = self._recovered_at
        return at is not None and time.monotonic() - at < grace

    # -- calls with their own rules ----------------------------------------------------------
    def record_heartbeat(self, trial_id: int) -> None:
        """Best effort, in a background thread: never raises, never blocks past one try."""
        try:
            RDBStorage.record_heartbeat(self, trial_id)
        except Exception:
            return
        self._back()

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        if self.recently_recovered():
            return []  # every heartbeat is as old as the outage: none of them says "dead"
        return self._call(lambda: RDBStorage._get_stale_trial_ids(self, study_id))

    def _journaled(self, name: str, trial_id: int, *args: Any, **kwargs: Any) -> Any:
        method = getattr(RDBStorage, name)
        entry = self.journal.pending(trial_id) if self.journal is not None else None
        try:
            if entry is not None and entry["writes"]:  # the database is back: catch up first
                self._call(lambda: apply_writes(self, entry))
                self.journal.writes_done(trial_id)  # type: ignore[union-attr]
            finishing = name == "set_trial_state_values"
            result = self._call(lambda: method(self, trial_id, *args, **kwargs), finishing)
        except _AlreadyDone:
            return True  # set_trial_state_values: the attempt that "failed" had committed
        except StorageUnavailable:
            if self.journal is None or trial_id not in self._owned:
                raise
            self.journal.add(trial_id, name, args, kwargs)
            return True
        if name == "set_trial_state_values" and result:
            state = kwargs.get("state", args[0] if args else None)
            if state == TrialState.RUNNING:
                self._owned.add(trial_id)  # popped a queued trial: this process runs it
        return result

    def create_new_trial(self, study_id: int, template_trial: Any = None) -> int:
        trial_id = self._call(lambda: RDBStorage.create_new_trial(self, study_id, template_trial))
        self._owned.add(trial_id)
        return trial_id

    def _create_new_trial(self, study_id: int, template_trial: Any = None) -> Any:
        frozen = self._call(lambda: RDBStorage._create_new_trial(self, study_id, template_trial))
        if frozen.state == TrialState.RUNNING:
            self._owned.add(frozen._trial_id)
        return frozen

    def record_outcome(self, trial_id: int, state: Any, values: Any) -> bool:
        """Keep a trial's final state in the journal (its ``tell`` met the outage)."""
        if self.journal is None or trial_id not in self._owned:
            return False
        self.journal.finish(trial_id, state, values)
        return True


class _AlreadyDone(Exception):
    """A retried write found its earlier, apparently failed, attempt committed."""


def _retrying(name: str) -> Callable[..., Any]:
    method = getattr(RDBStorage, name)

    @functools.wraps(method)
    def call(self: ResilientStorage, *args: Any, **kwargs: Any) -> Any:
        return self._call(lambda: method(self, *args, **kwargs))

    return call


def _journaling(name: str) -> Callable[..., Any]:
    @functools.wraps(getattr(RDBStorage, name))
    def call(self: ResilientStorage, trial_id: int, *args: Any, **kwargs: Any) -> Any:
        return self._journaled(name, trial_id, *args, **kwargs)

    return call


for _name in _RETRIED:
    if _name not in ResilientStorage.__dict__ and hasattr(RDBStorage, _name):
        setattr(ResilientStorage, _name, _retrying(_name))
for _name in _JOURNALED:
    setattr(ResilientStorage, _name, _journaling(_name))
