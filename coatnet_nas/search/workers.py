"""Workers: processes that pull trials of a stored study until it holds its target.

Any process that can reach the storage can be a worker (another machine included): the study
stores its :class:`~coatnet_nas.search.config.SearchConfig`, so every worker scores trials the
same way. ``run_search`` starts local ones with :func:`run_local_workers`: spawned processes that
split the CPU cores between them and exit when their parent does (heartbeats then recover the
trial they were running).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from typing import Any

import optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from coatnet_nas.errors import CoatnetError
from coatnet_nas.search.objective import Objective
from coatnet_nas.search.opening import TARGET_ATTR, open_study
from coatnet_nas.search.storage import make_storage
from coatnet_nas.search.strategies import Pruner, Sampler, make_pruner, make_sampler

__all__ = ["run_local_workers", "run_worker"]


def run_worker(
    storage_url: str,
    study_name: str,
    target: int | None = None,
    timeout: float | None = None,
    sampler: Sampler | str = Sampler.TPE,
    pruner: Pruner | str = Pruner.HYPERBAND,
    seed: int | None = None,
    heartbeat_interval: int | None = 30,
    device: str = "auto",
    worker_index: int = 0,
    watch_parent: int | None = None,
    objective: Objective | None = None,
    trials: int | None = None,
) -> None:
    """Run trials of an existing study until it holds ``target`` trials (or ``timeout`` ends).

    ``target`` defaults to the one ``run_search`` stored, or (with ``trials``) to this many more
    than the study holds now. The sampler is seeded ``seed`` (default: the study's seed) plus
    ``worker_index``, so that workers sharing a study do not propose the same candidates.
    """

    sampler = Sampler.parse(sampler, "sampler")
    pruner = Pruner.parse(pruner, "pruner")
    if trials is not None and trials < 1:
        raise CoatnetError(f"trials must be >= 1, got {trials}.", param="trials")
    storage = make_storage(storage_url, heartbeat_interval)
    probe, config = open_study(storage, study_name)
    if trials is not None:
        target = len(probe.get_trials(deepcopy=False)) + trials
    elif target is None:
        target = int(probe.user_attrs.get(TARGET_ATTR, len(probe.trials) + 1))
    base_seed = config.seed if seed is None else seed
    study, _ = open_study(
        storage,
        study_name,
        sampler=make_sampler(sampler, base_seed + worker_index, config.multi_objective),
        pruner=make_pruner(pruner, config.multi_objective),
    )
    if watch_parent is not None:
        _exit_with_parent(watch_parent)
    remaining = max(0, target - len(study.get_trials(deepcopy=False)))
    if remaining == 0 and not _waiting(study):
        return
    if objective is None:
        objective = Objective(config, device=device)
        objective.data()  # a missing or unreadable data set stops this worker, not every trial
    study.optimize(
        objective,
        n_trials=max(remaining, 1) + len(_waiting(study)),
        timeout=timeout,
        callbacks=[MaxTrialsCallback(target, states=None)],
        catch=(Exception,),
        gc_after_trial=True,
    )


def run_local_workers(workers: int, **kwargs: Any) -> None:
    """Run ``workers`` spawned :func:`run_worker` processes on this machine and wait for them."""
    ctx = mp.get_context("spawn")  # fork would copy torch's thread pools and open connections
    threads = max(1, (os.cpu_count() or 1) // workers)
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
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
    bad = [p.exitcode for p in procs if p.exitcode]
    if bad:
        raise CoatnetError(f"{len(bad)} worker process(es) exited with codes {bad}.")


def _worker_process(kwargs: dict[str, Any], threads: int) -> None:
    import torch

    # K workers x default threads on the same cores oversubscribe them; OpenMP waits then made
    # 2 workers 4x slower than 1 on a 2-core machine. Split the cores instead.
    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    run_worker(**kwargs)


def _waiting(study: optuna.Study) -> list:
    """Trials re-queued by the stale-trial callback: they run before new ones are sampled."""
    return study.get_trials(deepcopy=False, states=(TrialState.WAITING,))


def _exit_with_parent(parent_pid: int) -> None:
    """A local worker must not outlive its ``run_search``; heartbeats recover its trial."""

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True).start()
