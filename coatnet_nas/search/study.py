"""Optuna wiring: storages, samplers, pruners, resumable studies and local worker processes.

A study is self-describing: its :class:`SearchConfig` (space, budget, objectives, seed) is stored
as a study user attribute, so ``coatnet worker --storage URL --study NAME`` on another machine
evaluates trials exactly like the process that created it. Heartbeats mark a killed worker's
trial FAIL and :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback` re-queues it, so no
trial stays RUNNING forever and none is lost.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from coatnet_nas.errors import CoatnetError
from coatnet_nas.search.objective import Objective, SearchConfig

DEFAULT_STORAGE = "sqlite:///coatnet-search.db"
CONFIG_ATTR = "coatnet_config"
TARGET_ATTR = "coatnet_target_trials"
SAMPLERS = ("tpe", "random", "nsga2")
PRUNERS = ("hyperband", "median", "none")


def make_storage(url: str, heartbeat_interval: int | None = 30) -> RDBStorage:
    """An RDB storage for any SQLAlchemy URL, with heartbeats and stale-trial retry."""
    if "://" not in url:
        raise CoatnetError(
            f"--storage: expected an SQLAlchemy URL like sqlite:///coatnet-search.db or "
            f"postgresql://user@host/db, got {url!r}."
        )
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
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
            storage = RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
        if url.startswith("sqlite"):
            _fast_sqlite(storage)
        return storage
    except ImportError as exc:
        raise CoatnetError(
            f"--storage {url}: the database driver is not installed ({exc}); for PostgreSQL "
            "install psycopg2-binary (pip install 'coatnet-nas[postgres]')."
        ) from None
    except Exception as exc:  # sqlalchemy.exc.* — bad URL, unreachable server, bad file path
        raise CoatnetError(
            f"--storage {url}: cannot open the storage ({type(exc).__name__}: {exc})."
        ) from None


def _fast_sqlite(storage: RDBStorage) -> None:
    """WAL journal + ``synchronous=NORMAL``: each trial makes ~20 small commits, and a full fsync
    per commit dominated the cost of a rejected trial. A killed process still loses nothing and
    the file is never corrupted; only a power cut can drop the last commits."""

    @sqlalchemy.event.listens_for(storage.engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    storage.engine.dispose()  # connections opened by the constructor predate the pragmas


def _retry_callback() -> RetryHeartbeatStaleTrialCallback:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback(max_retry=2)


def make_sampler(name: str, seed: int, multi_objective: bool) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=5, multivariate=True, constant_liar=True
        )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=8)
    raise CoatnetError(f"--sampler: expected one of {', '.join(SAMPLERS)}, got {name!r}.")


def make_pruner(name: str, multi_objective: bool) -> optuna.pruners.BasePruner:
    if multi_objective or name == "none":
        return optuna.pruners.NopPruner()  # multi-objective studies cannot prune
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    raise CoatnetError(f"--pruner: expected one of {', '.join(PRUNERS)}, got {name!r}.")


def open_study(
    storage: RDBStorage,
    name: str,
    config: SearchConfig | None = None,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> tuple[optuna.Study, SearchConfig]:
    """Create or resume ``name``; with ``config=None`` the study must exist (worker/report)."""
    if config is None:
        try:
            study = optuna.load_study(
                study_name=name, storage=storage, sampler=sampler, pruner=pruner
            )
        except KeyError:
            known = (
                ", ".join(s.study_name for s in optuna.get_all_study_summaries(storage)) or "none"
            )
            raise CoatnetError(
                f"--study: no study named {name!r} in this storage (studies: {known})."
            ) from None
        stored = study.user_attrs.get(CONFIG_ATTR)
        if stored is None:
            raise CoatnetError(
                f"study {name!r} was not created by coatnet search (no stored config)."
            )
        return study, SearchConfig.from_json(stored)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        directions=config.directions,
        load_if_exists=True,
    )
    if list(d.name.lower() for d in study.directions) != config.directions:
        raise CoatnetError(
            f"study {name!r} exists with other objectives; use another --study name."
        )
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        study.set_user_attr(CONFIG_ATTR, config.to_json())
    elif stored != config.to_json():
        old = SearchConfig.from_json(stored)
        diff = [
            k
            for k in ("flops", "params", "objectives", "seed")
            if getattr(old, k) != getattr(config, k)
        ]
        if getattr(old, "proxy", "train") != getattr(config, "proxy", "train"):
            diff.append("proxy")
        if old.space != config.space:
            diff.append("search space / proxy recipe")
        raise CoatnetError(
            f"study {name!r} already exists with a different configuration ({', '.join(diff)}); "
            "resume it with the same settings, or pass a new --study name."
        )
    return study, config


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


def run_worker(
    storage_url: str,
    study_name: str,
    target: int | None = None,
    timeout: float | None = None,
    sampler: str = "tpe",
    pruner: str = "hyperband",
    seed: int | None = None,
    heartbeat_interval: int | None = 30,
    device: str = "auto",
    worker_index: int = 0,
    watch_parent: int | None = None,
    objective: Objective | None = None,
) -> None:
    """Run trials of an existing study until it holds ``target`` trials (or ``timeout`` ends)."""
    storage = make_storage(storage_url, heartbeat_interval)
    probe, config = open_study(storage, study_name)
    if target is None:
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


def _waiting(study: optuna.Study) -> list:
    return study.get_trials(deepcopy=False, states=(TrialState.WAITING,))


def _exit_with_parent(parent_pid: int) -> None:
    """A local worker must not outlive ``coatnet search``; heartbeats recover its trial."""

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True).start()


def _worker_process(kwargs: dict, threads: int) -> None:
    import torch

    # K workers x default threads on the same cores oversubscribe them; OpenMP waits then made
    # 2 workers 4x slower than 1 on a 2-core machine. Split the cores instead.
    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    run_worker(**kwargs)


def run_search(
    config: SearchConfig,
    storage_url: str = DEFAULT_STORAGE,
    study_name: str | None = None,
    trials: int = 10,
    timeout: float | None = None,
    workers: int = 1,
    sampler: str = "tpe",
    pruner: str = "hyperband",
    heartbeat_interval: int | None = 30,
    device: str = "auto",
    on_progress: Callable[[SearchProgress], None] | None = None,
    poll_seconds: float = 1.0,
) -> optuna.Study:
    """Add ``trials`` trials to the study (created or resumed) using ``workers`` processes."""
    if trials < 1 or workers < 1:
        raise CoatnetError(f"--trials and --workers must be >= 1, got {trials} and {workers}.")
    if sampler not in SAMPLERS:
        raise CoatnetError(f"--sampler: expected one of {', '.join(SAMPLERS)}, got {sampler!r}.")
    if pruner not in PRUNERS:
        raise CoatnetError(f"--pruner: expected one of {', '.join(PRUNERS)}, got {pruner!r}.")
    if config.multi_objective and sampler == "tpe":
        sampler = "nsga2"
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
            ctx = mp.get_context("spawn")
            procs = [
                ctx.Process(
                    target=_worker_process,
                    args=(
                        {**kwargs, "worker_index": i, "watch_parent": os.getpid()},
                        max(1, (os.cpu_count() or 1) // workers),
                    ),
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
    finally:
        stop.set()
        if poller is not None:
            poller.join(timeout=5)
            on_progress(snapshot(study, target, start))
    return study


def default_study_name(config: SearchConfig) -> str:
    from coatnet_nas.units import human

    parts = [config.space.name]
    if config.flops:
        parts.append(f"{human(config.flops, 1)}FLOPs")
    if config.params:
        parts.append(f"{human(config.params, 1)}params")
    if config.multi_objective:
        parts.append("+".join(config.objectives))
    return "-".join(parts)
