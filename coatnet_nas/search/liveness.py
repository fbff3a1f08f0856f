"""No trial stays RUNNING for a dead process, and none is lost: reap, re-queue, heartbeat.

Heartbeats find a dead worker only after their grace period (2x the interval), so a search re-run
at once after ``kill -9`` used to find its killed trial still RUNNING. Every trial therefore
records the host and process id that runs it; a worker on the same host sees at once that the
process is gone, fails the trial (``status=worker_died``) and re-queues its parameters. Across
machines the heartbeat does the same job (:func:`reap` runs Optuna's ``fail_stale_trials`` too).
A new trial is created with its claim in one write (:func:`ask_claimed`), so a worker killed at
any point leaves a trial it can be found by. A queued trial is claimed just after it is popped
(claiming it before would let a worker that loses the pop overwrite the winner's claim); one
killed in between, like any trial with neither a process id nor a heartbeat, is reaped once it
is 4 heartbeat intervals old.

A re-queued trial repeats its candidate: a queued trial's full fixed parameters (a promotion, a
baseline, an earlier retry), or a sampled trial's drawn ones. A sampled trial that died while its
parameters were still being drawn (before its spec was recorded) had started no work and was no
candidate yet: it is failed and not re-queued (re-queuing the half it drew would run another
architecture under its name); the sampler draws a new candidate instead.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import warnings
from collections.abc import Iterator
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from coatnet_nas.search.config import TrialStatus
from coatnet_nas.search.storage import MAX_RETRY  # the heartbeat retries' bound, shared

__all__ = [
    "HOST_ATTR",
    "PID_ATTR",
    "ask_claimed",
    "claim",
    "heartbeat",
    "params_of",
    "reap",
    "requeue",
]

HOST_ATTR = "host"
PID_ATTR = "pid"
RETRIES_ATTR = "retries"
DRAWN_ATTR = "spec"  # the objective records the full spec once every parameter is drawn
_HOST = socket.gethostname()


def _claim_attrs(run_id: str) -> dict[str, Any]:
    return {HOST_ATTR: _HOST, PID_ATTR: os.getpid(), "run": run_id}


def claim(trial: optuna.Trial, run_id: str) -> None:
    """Record who runs ``trial`` (overwrites what a re-queued copy inherited)."""
    for key, value in _claim_attrs(run_id).items():
        trial.set_user_attr(key, value)


def ask_claimed(study: optuna.Study, run_id: str) -> optuna.Trial:
    """:meth:`optuna.Study.ask`, claimed: a queued trial is popped then claimed, a new trial is
    created with its claim (no moment at which it is RUNNING without a process id)."""
    storage = study._storage
    study._thread_local.cached_all_trials = None  # what ask does: sync once per trial
    for t in storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if not storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                continue  # another worker popped it first
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        trial = optuna.Trial(study, t._trial_id)
        claim(trial, run_id)
        return trial
    template = FrozenTrial(
        number=-1,
        state=TrialState.RUNNING,
        value=None,
        values=None,
        datetime_start=datetime.datetime.now(),
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs=_claim_attrs(run_id),
        system_attrs={},
        intermediate_values={},
        trial_id=-1,
    )
    return optuna.Trial(study, storage.create_new_trial(study._study_id, template_trial=template))


def params_of(t: FrozenTrial) -> dict[str, Any]:
    """The trial's parameters (a queued trial holds them as fixed parameters until it runs)."""
    return dict(t.system_attrs.get("fixed_params") or t.params)  # not a half-sampled copy


def alive(pid: int) -> bool:
    """Whether ``pid`` runs on this host (a zombie, killed but not yet waited for, is dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc: trust kill(0)


def reap(study: optuna.Study) -> int:
    """Fail and re-queue RUNNING trials of dead processes on this host; then stale ones anywhere.

    Returns how many this call reaped on this host. Safe to run from many workers at once: only
    the one whose ``tell`` succeeds re-queues the trial.
    """
    reaped = 0
    storage = study._storage  # Optuna's own fail_stale_trials reads it the same way
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get(PID_ATTR)
        if HOST_ATTR not in t.user_attrs and interval is not None and _unclaimed(t, interval):
            reason = "worker died between creating the trial and claiming it"
            if end_trial(study, t, TrialStatus.WORKER_DIED, reason):
                requeue(study, t, count_retry=True)
            continue
        if t.user_attrs.get(HOST_ATTR) != _HOST or not isinstance(pid, int):
            continue
        if pid == os.getpid() or alive(pid):
            continue
        if end_trial(study, t, TrialStatus.WORKER_DIED, f"worker died (process {pid})"):
            requeue(study, t, count_retry=True)
            reaped += 1
    if interval is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    return reaped


def _unclaimed(t: FrozenTrial, interval: int) -> bool:
    """A RUNNING trial nobody claimed for 4 heartbeat intervals (a live worker claims it within
    milliseconds of creating it; no heartbeat ever starts for it, so only this finds it)."""
    start = t.datetime_start
    if start is None:
        return False
    now = datetime.datetime.now(start.tzinfo)
    return (now - start).total_seconds() > 4 * interval


def end_trial(study: optuna.Study, t: FrozenTrial, status: TrialStatus, reason: str) -> bool:
    """Mark a RUNNING trial FAIL with ``status``/``reason``; ``False`` if it had already ended."""
    storage = study._storage
    try:
        storage.set_trial_user_attr(t._trial_id, "status", status.value)
        storage.set_trial_user_attr(t._trial_id, "reason", reason)
        study.tell(t.number, state=TrialState.FAIL)
    except Exception:  # ended meanwhile (another reaper, or the trial's own tell): leave it
        return False
    return True


def requeue(study: optuna.Study, t: FrozenTrial, count_retry: bool) -> bool:
    """Enqueue ``t``'s candidate again (at most :data:`MAX_RETRY` times if it killed a worker);
    ``False`` when not re-queued (too many retries, or a sampled trial ended mid-draw)."""
    retries = int(t.user_attrs.get(RETRIES_ATTR, 0)) + (1 if count_retry else 0)
    if retries > MAX_RETRY:
        return False
    if not t.system_attrs.get("fixed_params") and DRAWN_ATTR not in t.user_attrs:
        return False  # died mid-draw: no candidate yet (see the module docstring)
    attrs: dict[str, Any] = {"retry_of": t.number, RETRIES_ATTR: retries}
    for key in ("yardstick", "rung", "seed"):  # a baseline, a promoted candidate stay so
        if key in t.user_attrs:
            attrs[key] = t.user_attrs[key]
    study.enqueue_trial(params_of(t), user_attrs=attrs, skip_if_exists=False)
    return True


@contextlib.contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """Optuna's heartbeat thread for ``trial`` while it runs (a no-op without heartbeats)."""
    from optuna.storages._heartbeat import get_heartbeat_thread  # what study.optimize uses

    with get_heartbeat_thread(trial._trial_id, study._storage):
        yield
