""":func:`run_search`, which runs a search end to end, and progress snapshots of a study.

Opening (create/resume by config) lives in :mod:`~coatnet_nas.search.opening` and worker
processes in :mod:`~coatnet_nas.search.workers`; this module puts them together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from coatnet_nas.errors import CoatnetError
from coatnet_nas.search.config import SearchConfig
from coatnet_nas.search.objective import Objective
from coatnet_nas.search.opening import TARGET_ATTR, open_study
from coatnet_nas.search.storage import DEFAULT_STORAGE, make_storage
from coatnet_nas.search.strategies import Pruner, Sampler
from coatnet_nas.search.workers import run_local_workers, run_worker

__all__ = ["SearchProgress", "default_study_name", "open_study", "run_search", "snapshot"]


@dataclass(frozen=True)
class SearchProgress:
    """A snapshot of a study for progress displays."""

    complete: int
    pruned: int
    failed: int
    running: int
    target: int
    best_value: float | None
    best_number: int | None
    elapsed: float

    @property
    def done(self) -> int:
        return self.complete + self.pruned + self.failed


def snapshot(study: optuna.Study, target: int, start: float) -> SearchProgress:
    """Trial counts by state and the best feasible value (first objective) so far."""
    trials = study.get_trials(deepcopy=False)
    count = {s: 0 for s in TrialState}
    for t in trials:
        count[t.state] += 1
    best = None
    for t in trials:
        feasible = all(v <= 0 for v in t.constraints.values())
        if (
            t.state == TrialState.COMPLETE
            and feasible
            and (best is None or t.values[0] > best.values[0])
        ):
            best = t
    return SearchProgress(
        complete=count[TrialState.COMPLETE],
        pruned=count[TrialState.PRUNED],
        failed=count[TrialState.FAIL],
        running=count[TrialState.RUNNING],
        target=target,
        best_value=best.values[0] if best else None,
        best_number=best.number if best else None,
        elapsed=time.monotonic() - start,
    )


def run_search(
    config: SearchConfig,
    storage_url: str = DEFAULT_STORAGE,
    study_name: str | None = None,
    trials: int = 10,
    timeout: float | None = None,
    workers: int = 1,
    sampler: Sampler | str = Sampler.TPE,
    pruner: Pruner | str = Pruner.HYPERBAND,
    heartbeat_interval: int | None = 30,
    device: str = "auto",
    on_progress: Callable[[SearchProgress], None] | None = None,
    poll_seconds: float = 1.0,
) -> optuna.Study:
    """Add ``trials`` trials to the study (created or resumed) using ``workers`` processes.

    One worker runs in this process; more are spawned (:func:`run_local_workers`).
    ``on_progress`` gets a :class:`SearchProgress` every ``poll_seconds`` and once at the end.
    """
    if trials < 1:
        raise CoatnetError(f"trials must be >= 1, got {trials}.", param="trials")
    if workers < 1:
        raise CoatnetError(f"workers must be >= 1, got {workers}.", param="workers")
    sampler = Sampler.parse(sampler, "sampler")
    pruner = Pruner.parse(pruner, "pruner")
    name = study_name or default_study_name(config)
    storage = make_storage(storage_url, heartbeat_interval)
    objective = Objective(config, device=device)
    objective.data()  # fail fast (clear error, exit 2) before the study is touched
    study, config = open_study(storage, name, config)
    target = len(study.get_trials(deepcopy=False)) + trials
    study.set_user_attr(TARGET_ATTR, target)
    kwargs = dict(
        storage_url=storage_url,
        study_name=name,
        target=target,
        timeout=timeout,
        sampler=sampler,
        pruner=pruner,
        heartbeat_interval=heartbeat_interval,
        device=device,
    )
    start = time.monotonic()
    stop = threading.Event()
    poller = None
    if on_progress is not None:

        def poll() -> None:
            while not stop.wait(poll_seconds):
                on_progress(snapshot(study, target, start))

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
    try:
        if workers == 1:
            run_worker(**kwargs, objective=objective)
        else:
            run_local_workers(workers, **kwargs)
    finally:
        stop.set()
        if poller is not None:
            poller.join(timeout=5)
            on_progress(snapshot(study, target, start))
    return study


def default_study_name(config: SearchConfig) -> str:
    """``<space>-<budget>[-<objectives>]``: the same settings find the same study again."""
    from coatnet_nas.units import human

    parts = [config.space.name]
    if config.flops:
        parts.append(f"{human(config.flops, 1)}FLOPs")
    if config.params:
        parts.append(f"{human(config.params, 1)}params")
    if config.multi_objective:
        parts.append("+".join(config.objectives))
    return "-".join(parts)
