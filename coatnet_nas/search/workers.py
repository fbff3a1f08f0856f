"""Workers: processes that pull trials of a stored study until it holds its target.

Any process that can reach the storage can be a worker (another machine included): the study
stores its :class:`~coatnet_nas.search.config.SearchConfig`, so every worker scores trials the
same way. ``run_search`` starts local ones with :func:`run_local_workers`: spawned processes that
split the CPU cores between them and exit when their parent does (the next worker on this host
then re-queues the trial they were running, at once: see :mod:`~coatnet_nas.search.liveness`).

Ctrl-C is the parent's to handle: local workers ignore SIGINT (a terminal sends it to the whole
process group, ``kill -INT`` to the parent alone), and the parent asks each of them once, with
:data:`STOP_SIGNAL`, to end its trial as ``interrupted`` and re-queue it. A second Ctrl-C kills
them at once (the next run reaps their trials by process id). SIGTERM (preemption) is a first
Ctrl-C, in the parent and in a worker it reaches directly (:mod:`coatnet_nas.signals`).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import socket
import sys
import threading
import time
import uuid
from typing import Any

import optuna

from coatnet_nas import signals
from coatnet_nas.errors import CoatnetError
from coatnet_nas.search.objective import Objective
from coatnet_nas.search.opening import (
    RUN_ATTR_PREFIX,
    TARGET_ATTR,
    open_storage,
    open_study,
    strategy_of,
)
from coatnet_nas.search.resilient import check_retry_seconds
from coatnet_nas.search.runner import RunLimits, drive, run_lock_path
from coatnet_nas.search.strategies import Pruner, Sampler, make_pruner, make_sampler
from coatnet_nas.threads import threads_per_worker

__all__ = ["check_heartbeat", "derive_seed", "new_run_id", "run_local_workers", "run_worker"]


def run_worker(
    storage_url: str,
    study_name: str,
    trials: int | None = None,
    study_trials: int | None = None,
    timeout: float | None = None,
    sampler: Sampler | str | None = None,
    pruner: Pruner | str | None = None,
    seed: int | None = None,
    heartbeat_interval: int | None = None,
    device: str = "auto",
    worker_index: int = 0,
    watch_parent: int | None = None,
    objective: Objective | None = None,
    run_id: str | None = None,
    storage_retry_seconds: float | None = None,
    tensorboard: str | None = None,
) -> int:
    """Run trials of an existing study; return how many this process evaluated.

    Stops when its run (``run_id``, default: a new one) has ``trials`` evaluated trials or the
    study holds ``study_trials``; with neither, the study's stored target. ``sampler``, ``pruner``
    and ``heartbeat_interval`` default to those the study was created with. The sampler's seed
    derives from ``seed`` (default: the study's), the study's size, ``worker_index`` and the
    process id, so a resumed or concurrent run proposes new points rather than replaying.
    ``storage_retry_seconds``: how long a storage outage is retried (default
    ``$COATNET_STORAGE_RETRY`` or 300 s).
    ``tensorboard``: a folder for one TensorBoard run per trial this process trains.
    """
    if trials is not None and trials < 1:
        raise CoatnetError(f"trials must be >= 1, got {trials}.", param="trials")
    check_retry_seconds(storage_retry_seconds)
    retry = storage_retry_seconds
    reader = open_storage(storage_url, None, create=False, retry_seconds=retry)
    stored = strategy_of(open_study(reader, study_name)[0])
    sampler = Sampler.parse(sampler or stored.get("sampler", Sampler.TPE.value), "sampler")
    pruner = Pruner.parse(pruner or stored.get("pruner", Pruner.HYPERBAND.value), "pruner")
    if heartbeat_interval is None:
        heartbeat_interval = stored.get("heartbeat_interval", 30)  # older studies: the old default
    check_heartbeat(heartbeat_interval)
    storage = open_storage(storage_url, heartbeat_interval, create=False, retry_seconds=retry)
    probe, config = open_study(storage, study_name)
    if trials is None and study_trials is None:
        study_trials = int(probe.user_attrs.get(TARGET_ATTR, 0)) or None
        trials = 1 if study_trials is None else None  # a study without a target: one trial
    own_run = run_id is None
    run_id = run_id or new_run_id()
    sampler_seed = derive_seed(
        config.seed if seed is None else seed, len(probe.get_trials(deepcopy=False)), worker_index
    )
    study, _ = open_study(
        storage,
        study_name,
        sampler=make_sampler(sampler, sampler_seed, config.multi_objective),
        pruner=make_pruner(pruner, config.multi_objective),
    )
    record_run(study, run_id, worker_index, seed, sampler_seed, (sampler, pruner), trials)
    if watch_parent is not None:
        _exit_with_parent(watch_parent)
    limits = RunLimits(run_id, trials=trials, study_trials=study_trials, timeout=timeout)
    if objective is None:
        placed = _placed(device, worker_index)
        objective = Objective(config, device=placed, tensorboard=tensorboard)
        objective.data()  # a missing or unreadable data set stops this worker, not every trial
    try:
        return drive(study, objective, limits)
    finally:
        if own_run:
            with contextlib.suppress(OSError):
                os.remove(run_lock_path(run_id))


def run_local_workers(workers: int, **kwargs: Any) -> list[str]:
    """Run ``workers`` spawned :func:`run_worker` processes here; return notes on dead ones.

    One dead worker does not stop the others (they reap and re-run its trial); the notes name
    each worker that exited with an error, so the caller can still report the study.
    """
    ctx = mp.get_context("spawn")  # fork would copy torch's thread pools and open connections
    threads = threads_per_worker(workers)  # the cores this job was given, not the machine's
    procs = [
        ctx.Process(
            target=_worker_process,
            args=({**kwargs, "worker_index": i, "watch_parent": os.getpid()}, threads),
            daemon=False,
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        _stop_workers(procs)
        raise
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
    return [
        f"local worker {i} exited with code {p.exitcode}"
        + (f" (killed by signal {-p.exitcode})" if p.exitcode < 0 else "")
        + "; its trial was re-queued and the other workers went on."
        for i, p in enumerate(procs)
        if p.exitcode
    ]


# The parent's request to a local worker to stop after re-queuing its trial (SIGINT stays ignored
# in workers, so one Ctrl-C is never delivered twice: once by the terminal, once forwarded).
STOP_SIGNAL = getattr(signal, "SIGUSR1", signal.SIGINT)
_STOP_SECONDS = 60.0  # ending a trial is a few storage writes; a busy SQLite file may wait


def _stop_workers(procs: list[Any]) -> None:
    """Ask each live worker once to end its trial; a second Ctrl-C here kills them at once."""
    for p in procs:
        if p.is_alive() and p.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, STOP_SIGNAL)
    try:
        deadline = time.monotonic() + _STOP_SECONDS
        for p in procs:
            p.join(timeout=max(0.0, deadline - time.monotonic()))
    except KeyboardInterrupt:
        for p in procs:
            if p.is_alive():
                p.kill()


def _worker_process(kwargs: dict[str, Any], threads: int) -> None:
    import torch

    if STOP_SIGNAL != signal.SIGINT:  # POSIX: the parent alone decides when workers stop
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parent's request, or SIGTERM sent to every process of a job (SLURM): the first one
    # ends the trial as interrupted and re-queues it; the other is then ignored.
    stops = tuple(dict.fromkeys((STOP_SIGNAL, *signals.STOP_SIGNALS)))
    with signals.terminate_as_interrupt(stops, once=True):
        _work(kwargs, threads, torch)


def _work(kwargs: dict[str, Any], threads: int, torch: Any) -> None:
    # K workers x default threads on the same cores oversubscribe them; OpenMP waits then made
    # 2 workers 4x slower than 1 on a 2-core machine. Split the cores instead.
    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        run_worker(**kwargs)
    except KeyboardInterrupt as exc:
        # The trial is already re-queued; the parent reports. A normal exit (not os._exit) runs
        # multiprocessing's finalizers: fvcore's precise-BN progress bar made a named semaphore
        # that would otherwise be reported as leaked on the user's terminal.
        signum = getattr(exc, "signum", STOP_SIGNAL)
        sys.exit(130 if signum == STOP_SIGNAL else 128 + signum)


def new_run_id() -> str:
    """An id for one run (all its local workers share it), stored on each of its trials."""
    return uuid.uuid4().hex[:12]


def derive_seed(seed: int, trials_so_far: int, worker_index: int) -> int:
    """A sampler seed from the user's seed, the study's size, the worker and this process.

    The same command twice must not replay the same proposals, and two runs started together
    (same size) with one seed must not collide: the process id tells them apart.
    """
    import numpy as np

    entropy = [seed & 0xFFFFFFFF, trials_so_far, worker_index, os.getpid()]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def record_run(
    study: optuna.Study,
    run_id: str,
    worker_index: int,
    seed: int | None,
    sampler_seed: int,
    strategy: tuple[Sampler, Pruner],
    trials: int | None,
) -> None:
    """One study attribute per run and worker (one key each, so concurrent runs never race)."""
    study.set_user_attr(
        f"{RUN_ATTR_PREFIX}{run_id}:{worker_index}",
        {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "seed": seed,
            "sampler_seed": sampler_seed,
            "sampler": strategy[0].value,
            "pruner": strategy[1].value,
            "trials": trials,
        },
    )


def check_heartbeat(heartbeat_interval: int | None) -> None:
    """``None`` is off (read-only use); an interval must be at least one second."""
    if heartbeat_interval is not None and heartbeat_interval < 1:
        raise CoatnetError(
            f"heartbeat_interval must be >= 1 second, got {heartbeat_interval}; without "
            "heartbeats a worker killed on another machine would leave its trial RUNNING "
            "for good.",
            param="heartbeat_interval",
        )


def _exit_with_parent(parent_pid: int) -> None:
    """A local worker must not outlive its ``run_search``; heartbeats recover its trial."""

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True).start()


def _placed(device: str, worker_index: int) -> str:
    """One trial per GPU: worker i of several on GPU i mod the visible GPUs (``cuda``/``auto``)."""
    import torch

    from coatnet_nas.data.devices import worker_device

    return worker_device(device, worker_index, torch.cuda.device_count())
