""":func:`run_search`, which runs a search end to end, and progress snapshots of a study.

Opening (create/resume by config) lives in :mod:`~coatnet_nas.search.opening` and worker
processes in :mod:`~coatnet_nas.search.workers`; this module puts them together.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from coatnet_nas.errors import CoatnetError
from coatnet_nas.search.config import SearchConfig
from coatnet_nas.search.launchers import Launcher, SlurmOptions, launch_slurm, ready_to_submit
from coatnet_nas.search.liveness import reap
from coatnet_nas.search.objective import Objective
from coatnet_nas.search.opening import TARGET_ATTR, open_storage, open_study
from coatnet_nas.search.resilient import check_retry_seconds
from coatnet_nas.search.runner import counted, run_lock_path
from coatnet_nas.search.storage import DEFAULT_STORAGE
from coatnet_nas.search.strategies import Pruner, Sampler
from coatnet_nas.search.warmstart import enqueue_yardsticks, yardstick_params
from coatnet_nas.search.workers import (
    check_heartbeat,
    new_run_id,
    run_local_workers,
    run_worker,
)

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


def snapshot(
    study: optuna.Study, target: int, start: float, run_id: str | None = None
) -> SearchProgress:
    """Trial counts by state (of one run, with ``run_id``) and the study's best feasible value.

    ``complete`` and ``pruned`` count evaluated trials only (not over-budget rejections or
    repeats), so that ``done`` moves towards ``target`` the way the run counts.
    """
    trials = study.get_trials(deepcopy=False)
    count = {s: 0 for s in TrialState}
    for t in trials:
        if run_id is not None and t.user_attrs.get("run") != run_id:
            continue
        if t.state.is_finished() and not counted(t):
            continue
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
    trials: int | None = 10,
    timeout: float | None = None,
    workers: int = 1,
    sampler: Sampler | str = Sampler.TPE,
    pruner: Pruner | str = Pruner.HYPERBAND,
    heartbeat_interval: int | None = 30,
    device: str = "auto",
    on_progress: Callable[[SearchProgress], None] | None = None,
    poll_seconds: float = 1.0,
    study_trials: int | None = None,
    on_note: Callable[[str], None] | None = None,
    enqueue: Sequence[Any] = (),
    launcher: Launcher | str = Launcher.LOCAL,
    slurm: SlurmOptions | None = None,
    storage_retry_seconds: float | None = None,
    tensorboard: str | None = None,
) -> optuna.Study:
    """Evaluate ``trials`` new architectures in the study (created or resumed), ``workers``
    processes at once; stop early if the study holds ``study_trials`` evaluated trials.

    Over-budget rejections and repeats of an evaluated architecture do not count, whatever other
    processes add to the study meanwhile. One worker runs in this process; more are spawned
    (:func:`run_local_workers`). ``on_progress`` gets a :class:`SearchProgress` every
    ``poll_seconds`` and once at the end. A local worker that dies does not stop the search:
    ``on_note`` gets a line about it (without ``on_note``, a :class:`CoatnetError` is raised after
    the others finished). ``enqueue`` holds specs (or YAML paths) evaluated first, as yardsticks.
    With ``launcher="slurm"`` the ``workers`` run as a SLURM job array (``slurm``'s settings;
    :mod:`~coatnet_nas.search.launchers`) working until the study holds its target.
    ``storage_retry_seconds``: how long every process retries a storage outage (default
    ``$COATNET_STORAGE_RETRY`` or 300 s; :mod:`~coatnet_nas.search.resilient`).
    ``tensorboard`` (a folder) gets one TensorBoard run per trained trial (per rung and seed),
    written by whichever worker process trains it.
    """
    if trials is None and study_trials is None:
        raise CoatnetError("trials: give trials and/or study_trials.", param="trials")
    for value, param in ((trials, "trials"), (study_trials, "study_trials"), (workers, "workers")):
        if value is not None and value < 1:
            raise CoatnetError(f"{param} must be >= 1, got {value}.", param=param)
    launcher = Launcher.parse(launcher)
    slurm = _slurm_options(launcher, slurm, storage_url)
    sampler = Sampler.parse(sampler, "sampler")
    pruner = Pruner.parse(pruner, "pruner")
    check_heartbeat(heartbeat_interval)
    check_retry_seconds(storage_retry_seconds)
    name = study_name or default_study_name(config)
    yardsticks = [yardstick_params(config.space, s) for s in enqueue]
    if tensorboard is not None:  # no tensorboard package, or not a folder: stop before any trial
        from coatnet_nas.train.tensorboard import TensorBoardRuns

        TensorBoardRuns(tensorboard)
    objective = Objective(config, device=device, tensorboard=tensorboard)
    objective.data()  # fail fast (clear error, exit 2) before any storage is created
    storage = open_storage(storage_url, heartbeat_interval, retry_seconds=storage_retry_seconds)
    strategy = {
        "sampler": sampler.value,
        "pruner": pruner.value,
        "heartbeat_interval": heartbeat_interval,
    }
    study, config = open_study(storage, name, config, strategy=strategy)
    reap(study)  # a trial of a process killed just now is re-queued before anything else
    evaluated = sum(map(counted, study.get_trials(deepcopy=False)))
    target = study_trials or evaluated + (trials or 0)
    study.set_user_attr(TARGET_ATTR, max(target, int(study.user_attrs.get(TARGET_ATTR, 0))))
    enqueue_yardsticks(study, config, yardsticks)
    run_id = new_run_id()
    kwargs = dict(
        storage_url=storage_url,
        study_name=name,
        trials=trials,
        study_trials=study_trials,
        timeout=timeout,
        sampler=sampler,
        pruner=pruner,
        heartbeat_interval=heartbeat_interval,
        device=device,
        seed=config.seed,
        run_id=run_id,
        storage_retry_seconds=storage_retry_seconds,
        tensorboard=tensorboard,
    )
    if slurm is not None:  # tasks on other machines share the study's target, not a run id
        kwargs.update(trials=None, study_trials=target, run_id=None)
    start = time.monotonic()
    goal = study_trials if trials is None else trials
    stop = threading.Event()
    poller = None

    def progress() -> SearchProgress:
        mine = trials is not None and slurm is None
        return snapshot(study, goal, start, run_id if mine else None)

    if on_progress is not None:

        def poll() -> None:
            while not stop.wait(poll_seconds):
                _show(on_progress, progress)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
    notes: list[str] = []
    try:
        if slurm is not None:
            notes = launch_slurm(workers, kwargs, slurm, name=f"coatnet-{name}"[:64])
            reap(study)
        elif workers == 1:
            run_worker(**kwargs, objective=objective)
        else:
            notes = run_local_workers(workers, **kwargs)
            reap(study)  # the last worker to die leaves its trial queued, not RUNNING
    finally:
        with contextlib.suppress(OSError):
            os.remove(run_lock_path(run_id))
        stop.set()
        if poller is not None:
            poller.join(timeout=5)
            _show(on_progress, progress)
    for note in notes:
        if on_note is None:
            raise CoatnetError(" ".join(notes))
        on_note(note)
    return study


def _slurm_options(
    launcher: Launcher, slurm: SlurmOptions | None, storage_url: str
) -> SlurmOptions | None:
    """The checked SLURM settings (None for local workers); a SQLite file is refused on SLURM."""
    if launcher is Launcher.LOCAL:
        if slurm is not None:
            raise CoatnetError("slurm settings apply with launcher slurm only.", param="launcher")
        return None
    slurm = (slurm or SlurmOptions()).checked()
    if slurm.cluster == "slurm" and not storage_url.startswith(("postgresql", "mysql")):
        raise CoatnetError(
            f"launcher slurm runs the workers on other machines, which must share the study: "
            f"give a PostgreSQL storage (postgresql+psycopg2://user@host/db), not {storage_url!r} "
            "(SQLite files are not safe on the network file systems nodes share).",
            param="storage_url",
        )
    ready_to_submit(slurm)
    return slurm


def _show(on_progress: Callable[[SearchProgress], None], progress: Callable[[], SearchProgress]):
    """Hand a snapshot to the display; a busy storage skips one (it is a display, not the work:
    a locked SQLite file under concurrent writers must not end the run)."""
    import sqlalchemy.exc

    try:
        snap = progress()
    except (sqlalchemy.exc.OperationalError, CoatnetError):  # busy, or the database is away
        return
    on_progress(snap)


def default_study_name(config: SearchConfig) -> str:
    """``<space>-<budget>[-<objectives>]``: the same settings find the same study again."""
    from coatnet_nas.units import human

    parts = [config.space.name]
    if config.flops:
        parts.append(f"{human(config.flops, 1)}FLOPs")
    if config.params:
        parts.append(f"{human(config.params, 1)}params")
    if config.max_latency:
        parts.append(f"{config.max_latency * 1e3:g}ms")
    if config.multi_objective:
        parts.append("+".join(config.objectives))
    return "-".join(parts)
