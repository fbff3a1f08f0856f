"""One worker's trial loop (ask, score, tell), and when a run has done what it was asked.

``study.optimize(n_trials=N)`` counts every trial it starts: over-budget rejections (milliseconds
each), repeats, and trials other processes add to a shared study, so ``N`` meant neither "N
trainings" nor "N from this run". Here a run has an id stored on each of its trials, and it stops
when ``trials`` of them were evaluated (a failed training counts, as an attempt; rejections,
duplicates and re-queued ones do not), or when the study holds ``study_trials`` evaluated ones.
Before each trial, dead trials are reaped (:mod:`~coatnet_nas.search.liveness`) and queued ones
run first, so a worker never leaves a re-queued trial behind because its own count was reached.

With a promotion ladder (:mod:`~coatnet_nas.search.rungs`) the counts are of rung-0 candidates;
before each decision the promotions due are enqueued (and so run first), and a run that has its
rung-0 candidates waits while trials in flight may still promote, stopping once the ladder is
complete or nothing is left in flight.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from coatnet_nas import signals
from coatnet_nas.errors import CoatnetError
from coatnet_nas.search.config import COUNTED, TrialStatus
from coatnet_nas.search.liveness import ask_claimed, end_trial, heartbeat, reap, requeue
from coatnet_nas.search.objective import RUNG_ATTR, SEED_ATTR, Objective, rung_and_seed
from coatnet_nas.search.opening import TARGET_ATTR
from coatnet_nas.search.promotion import promote
from coatnet_nas.search.resilient import ResilientStorage, StorageUnavailable

__all__ = ["RunLimits", "counted", "drive", "run_lock_path"]

_WAIT_SECONDS = 0.5
MAX_DRAWS_PER_TRIAL = 1000  # consecutive uncounted draws allowed per requested trial


@dataclass(frozen=True)
class RunLimits:
    """When one run stops: its own evaluated trials, the study's, and wall time."""

    run_id: str
    trials: int | None = None
    study_trials: int | None = None
    timeout: float | None = None


def counted(t: FrozenTrial) -> bool:
    """Whether ``t`` counts as an evaluated trial (see the module docstring): a rung-0 candidate
    (a promotion or a repeated seed is extra work the ladder asked for, not a new candidate)."""
    return (
        t.state.is_finished()
        and t.user_attrs.get("status") in COUNTED
        and not t.user_attrs.get(RUNG_ATTR, 0)
        and not t.user_attrs.get(SEED_ATTR, 0)
    )


def drive(study: optuna.Study, objective: Objective, limits: RunLimits) -> int:
    """Run trials until ``limits`` are met; return how many this process evaluated.

    Raises :class:`CoatnetError` after :data:`MAX_DRAWS_PER_TRIAL` x trials consecutive draws
    that were all over budget or duplicates (the space has nothing new under the budget), and
    ``KeyboardInterrupt`` after ending the current trial as ``interrupted`` and re-queuing it.
    """
    start = time.monotonic()
    asked = limits.trials or limits.study_trials or 1
    max_skips = MAX_DRAWS_PER_TRIAL * asked
    skips = evaluated = 0
    while True:
        signals.check()  # a stop signal whose exception a finalizer swallowed
        if skips >= max_skips:
            raise CoatnetError(
                f"{skips} consecutive candidates were over budget or already evaluated; the "
                "space has no new architecture under the budget (loosen the budget or widen the "
                "space).",
                param="trials",
            )
        reap(study)
        with _run_lock(limits.run_id):  # decide and claim atomically among this run's workers
            decision = _decide(study, limits, start, objective.config)
            trial = ask_claimed(study, limits.run_id) if decision == "go" else None
        if decision == "stop":
            return evaluated
        if trial is None:
            time.sleep(_WAIT_SECONDS)  # others' trials in flight may still reach the limit
            continue
        promoted = bool(rung_and_seed(trial) != (0, 0))
        done = run_trial(study, objective, trial)
        evaluated += done
        skips = 0 if done or promoted else skips + 1


def _decide(study: optuna.Study, limits: RunLimits, start: float, config=None) -> str:
    """``go`` (a queued trial, or the limits are not reached even counting trials in flight),
    ``wait`` (they would be if the trials in flight count, or in-flight trials may still
    promote) or ``stop``. With a ladder, the promotions due are enqueued first."""
    trials = study.get_trials(deepcopy=False)
    state = _tally(trials, limits.run_id)
    timed_out = limits.timeout is not None and time.monotonic() - start > limits.timeout
    closing = timed_out or _reached(limits, state[0] + state[1], state[2] + state[3])
    ladder_done = True
    if config is not None and config.ladder and not timed_out:
        target = int(study.user_attrs.get(TARGET_ATTR, 0))
        expected0 = 0 if closing else max(target, limits.study_trials or 0)
        enqueued, ladder_done = promote(study, config, trials, expected0)
        if enqueued:
            return "go"
    if any(t.state == TrialState.WAITING for t in trials):
        return "go"  # a re-queued (or promoted) trial is never left behind
    if _reached(limits, state[0], state[2]) or timed_out:
        in_flight = any(t.state == TrialState.RUNNING for t in trials)
        return "wait" if not ladder_done and in_flight and not timed_out else "stop"
    if closing:
        return "wait"
    return "go"


def run_lock_path(run_id: str) -> str:
    return os.path.join(tempfile.gettempdir(), f"coatnet-run-{run_id}.lock")


@contextlib.contextmanager
def _run_lock(run_id: str) -> Iterator[None]:
    """A file lock shared by the local workers of one run (they all run on this host), so two
    of them never both start the last trial the run needs."""
    from filelock import FileLock

    with FileLock(run_lock_path(run_id)):
        yield


def _drawing(t: FrozenTrial) -> bool:
    """A running rung-0 candidate: one that will count (see :func:`counted`) if it finishes."""
    a = t.user_attrs
    return t.state == TrialState.RUNNING and not a.get(RUNG_ATTR, 0) and not a.get(SEED_ATTR, 0)


def _tally(trials: list[FrozenTrial], run_id: str) -> tuple[int, int, int, int]:
    """(counted by this run, candidates running in this run, counted in the study, candidates
    running in the study). A running promotion or repeated seed is not a candidate: counted as
    one, it closed the run early, the ladder then promoted as if no more candidates would come,
    and the candidate drawn once it finished put a third architecture on a rung of ``top: 2``."""
    mine = [t for t in trials if t.user_attrs.get("run") == run_id]
    return (
        sum(map(counted, mine)),
        sum(map(_drawing, mine)),
        sum(map(counted, trials)),
        sum(map(_drawing, trials)),
    )


def _reached(limits: RunLimits, run_count: int, study_count: int) -> bool:
    if limits.study_trials is not None and study_count >= limits.study_trials:
        return True
    if limits.trials is not None and run_count >= limits.trials:
        return True
    return limits.trials is None and limits.study_trials is None


def run_trial(study: optuna.Study, objective: Objective, trial: optuna.Trial) -> bool:
    """Score and tell one asked trial; ``True`` when it counts as evaluated."""
    state, values = TrialState.FAIL, None
    try:
        with heartbeat(study, trial):
            result = objective(trial)
        state, values = TrialState.COMPLETE, result
    except optuna.TrialPruned:
        state = TrialState.PRUNED
    except KeyboardInterrupt:
        _interrupted(study, trial)
        raise
    except StorageUnavailable:  # away before the result existed: the trial stays RUNNING, and
        raise  # the next run's reaper re-queues it (this process is gone by then)
    except Exception:  # the objective recorded status=error and the reason
        state = TrialState.FAIL
    try:
        frozen = _tell(study, trial, values, state)
    except StorageUnavailable:  # the database stayed away: keep the outcome for the next run
        backend = getattr(study._storage, "_backend", study._storage)
        if isinstance(backend, ResilientStorage):
            backend.record_outcome(trial._trial_id, state, values)
        raise
    return counted(frozen)


def _tell(study: optuna.Study, trial: optuna.Trial, values: Any, state: TrialState) -> FrozenTrial:
    """Record the outcome in hand. A stop landing meanwhile (a slow SQLite write under load is a
    wide window) first lets it be recorded, then stops: left half-told, the trial stayed RUNNING
    until a later run reaped it, and a finished result was thrown away."""
    try:
        return study.tell(trial, values, state=state, skip_if_finished=True)
    except KeyboardInterrupt:
        with signals.exit_at_once():  # a second stop meanwhile exits, as a second Ctrl-C does
            study.tell(trial, values, state=state, skip_if_finished=True)
        raise


def _interrupted(study: optuna.Study, trial: optuna.Trial) -> None:
    """Ctrl-C or SIGTERM: end the trial as ``interrupted`` and queue it for the next run; a
    second one during this bookkeeping exits at once (the next run reaps the trial by its
    process id)."""
    with signals.exit_at_once():  # SIGTERM is a first Ctrl-C too: a second one of either exits
        try:
            frozen = study._storage.get_trial(trial._trial_id)
        except StorageUnavailable:
            return  # the database is away: a reaper re-queues the trial (its process is gone)
        if end_trial(study, frozen, TrialStatus.INTERRUPTED, "interrupted"):
            requeue(study, frozen, count_retry=False)
