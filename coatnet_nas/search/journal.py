"""Trial writes kept on local disk while the study's database is away, recorded when it is back.

A worker whose database stays unreachable past the retry window (see
:mod:`~coatnet_nas.search.resilient`) still finishes the training in flight; the trial's writes
(attributes, intermediate values, final state and values) go to one JSON file per process under
:func:`journal_root` (``$COATNET_JOURNAL``, else the user's state folder), keyed by a hash of
the storage URL and rewritten atomically on every change, so a kill loses nothing already
journaled. The next process that opens the same storage replays every file it finds, under a
file lock (two replays never record a result twice), and deletes it:

- a trial still RUNNING (nobody reaped it) gets its writes and its ``tell``;
- a trial that ended meanwhile (reaped as stale and re-queued by another worker) is recorded as
  a new finished trial with the same parameters (``recovered_from`` names the original), so the
  re-queued copy finds the architecture evaluated and does not train it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import uuid
from pathlib import Path
from typing import Any

from coatnet_nas._io import atomic_write_json

__all__ = ["JOURNAL_ENV", "Journal", "journal_root", "replay"]

JOURNAL_ENV = "COATNET_JOURNAL"


def journal_root() -> Path:
    given = os.environ.get(JOURNAL_ENV)
    if given:
        return Path(given).expanduser()
    import platformdirs

    return Path(platformdirs.user_state_dir("coatnet-nas")) / "storage-journal"


def _key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


class Journal:
    """This process's journal for one storage URL (a file appears with the first write)."""

    def __init__(self, url: str) -> None:
        self.folder = journal_root() / _key(url)
        name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        self.path = self.folder / name
        self.trials: dict[int, dict[str, Any]] = {}

    def _entry(self, trial_id: int) -> dict[str, Any]:
        return self.trials.setdefault(trial_id, {"trial_id": trial_id, "writes": []})

    def add(self, trial_id: int, name: str, args: tuple, kwargs: dict) -> None:
        """One storage write (``set_trial_*``) of a trial this process runs."""
        if name == "set_trial_state_values":
            state = kwargs.get("state", args[0] if args else None)
            values = kwargs.get("values", args[1] if len(args) > 1 else None)
            self._entry(trial_id)["outcome"] = _outcome(state, values)
        else:
            self._entry(trial_id)["writes"].append([name, list(args), dict(kwargs)])
        self._save()

    def finish(self, trial_id: int, state: Any, values: Any) -> None:
        """The trial's ``tell`` (state and values) that could not reach the database."""
        if isinstance(values, (int, float)):
            values = [values]
        self._entry(trial_id)["outcome"] = _outcome(state, values)
        self._save()

    def pending(self, trial_id: int) -> dict[str, Any] | None:
        return self.trials.get(trial_id)

    def writes_done(self, trial_id: int) -> None:
        """The trial's journaled writes reached the database (its outcome, if any, stays)."""
        entry = self.trials.get(trial_id)
        if entry is not None and entry["writes"]:
            entry["writes"] = []
            if "outcome" not in entry:
                del self.trials[trial_id]
            self._save()

    def done(self, trial_id: int) -> None:
        if self.trials.pop(trial_id, None) is not None:
            self._save()

    def _save(self) -> None:
        if self.trials:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, {"trials": list(self.trials.values())})
        else:
            self.path.unlink(missing_ok=True)


def _outcome(state: Any, values: Any) -> dict[str, Any]:
    return {
        "state": getattr(state, "name", state),
        "values": None if values is None else [float(v) for v in values],
    }


def apply_writes(storage: Any, entry: dict[str, Any]) -> None:
    """Re-do a trial's journaled attribute and intermediate-value writes (on a live storage)."""
    from optuna.storages import RDBStorage

    for name, args, kwargs in entry["writes"]:
        getattr(RDBStorage, name)(storage, entry["trial_id"], *args, **kwargs)


def replay(storage: Any) -> int:
    """Record every journaled trial of this storage; return how many were recorded."""
    from filelock import FileLock

    folder = journal_root() / _key(storage.url)
    if not folder.is_dir():
        return 0
    recorded = 0
    for path in sorted(folder.glob("*.json")):
        if _writer_alive(path):
            continue  # its process may still record (or journal) the trial itself
        with FileLock(str(path) + ".lock"):
            if not path.exists():
                continue  # another process replayed it meanwhile
            try:
                trials = json.loads(path.read_text())["trials"]
            except (OSError, ValueError, KeyError):
                continue  # unreadable: left for a person to look at, never guessed at
            for entry in trials:
                recorded += _replay_trial(storage, entry)
            path.unlink()
        with contextlib.suppress(OSError):
            os.remove(str(path) + ".lock")
    return recorded


def _writer_alive(path: Path) -> bool:
    """Whether the process that wrote ``path`` (``host-pid-...json``) still runs here."""
    host, _, rest = path.name.rpartition("-")[0].rpartition("-")
    if host != socket.gethostname() or not rest.isdigit():
        return False
    pid = int(rest)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:  # a zombie (killed, not yet waited for) is dead
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except ProcessLookupError:
        return False
    except (OSError, IndexError):
        return True  # no permission, or no /proc: kill(0) said it exists


def _study_of(storage: Any, trial_id: int) -> Any:
    """The study a trial belongs to (Optuna's storage API has no call for it)."""
    import optuna
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(storage.scoped_session) as session:
        study_id = models.TrialModel.find_or_raise_by_id(trial_id, session).study_id
    name = storage.get_study_name_from_id(study_id)
    return optuna.load_study(study_name=name, storage=storage)


def _replay_trial(storage: Any, entry: dict[str, Any]) -> int:
    from optuna.trial import TrialState, create_trial

    outcome = entry.get("outcome")
    frozen = storage.get_trial(entry["trial_id"])
    if frozen.state == TrialState.RUNNING:
        apply_writes(storage, entry)
        if outcome is None:
            return 0  # never finished: the reaper re-queues it (its process is gone)
        study = _study_of(storage, entry["trial_id"])
        study.tell(frozen.number, outcome["values"], state=TrialState[outcome["state"]])
        return 1
    if outcome is None or not frozen.params:
        return 0
    study = _study_of(storage, entry["trial_id"])
    if frozen.state.name == outcome["state"] and frozen.values == outcome["values"]:
        return 0  # recorded already (its own process got through after all)
    if any(t.user_attrs.get("recovered_from") == frozen.number for t in study.get_trials()):
        return 0  # replayed already
    attrs = {**frozen.user_attrs}
    values: dict[str, Any] = {}
    steps: dict[int, float] = dict(frozen.intermediate_values)
    for name, args, _ in entry["writes"]:
        if name == "set_trial_user_attr":
            attrs[args[0]] = args[1]
        elif name == "set_trial_intermediate_value":
            steps[int(args[0])] = float(args[1])
    for key in ("retry_of", "retries"):
        attrs.pop(key, None)
    attrs["recovered_from"] = frozen.number
    state = TrialState[outcome["state"]]
    if state == TrialState.PRUNED and steps:
        values["value"] = steps[max(steps)]
    elif outcome["values"] is not None:
        values["values"] = outcome["values"]
    study.add_trial(
        create_trial(
            state=state,
            params=frozen.params,
            distributions=frozen.distributions,
            user_attrs=attrs,
            system_attrs=dict(frozen.system_attrs),
            intermediate_values=steps,
            **values,
        )
    )
    return 1
