"""Where a search's workers run: here (:attr:`Launcher.LOCAL`) or as a SLURM job array.

:attr:`Launcher.SLURM` submits ``workers`` array tasks through submitit (Meta's SLURM library,
the ``slurm`` extra); each task is one worker on the study, exactly what ``coatnet worker`` runs,
so the tasks share the study through its storage (PostgreSQL: SQLite files are not safe on the
network file systems that cluster nodes share). The submitting process waits for them and
reports the study as a local search does; Ctrl-C there cancels the tasks.

Preemption and time limits. SLURM sends SIGTERM to a task it preempts or cancels: the worker
ends its trial as ``interrupted``, re-queues it in the study and exits (SLURM's
``--requeue``/preemption policy decides whether the task runs again). Ahead of the time limit,
submitit has SLURM send SIGUSR2 (``--signal``, :attr:`SlurmOptions.signal_delay_s` before the
end): the worker re-queues its trial the same way, then submitit requeues the task (the worker
is a ``submitit.helpers.Checkpointable``; its state is the study itself), at most
:attr:`SlurmOptions.max_requeues` times. Each task uses the cores SLURM gave it
(:func:`coatnet_nas.threads.usable_cpus`).

``SlurmOptions(cluster="local")`` runs the same array through submitit's local executor (real
processes and signals, no SLURM): the tests use it.
"""

from __future__ import annotations

import enum
import importlib
import re
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from coatnet_nas.errors import CoatnetError

__all__ = [
    "Launcher",
    "SlurmOptions",
    "SlurmWorker",
    "launch_slurm",
    "parse_slurm_time",
    "ready_to_submit",
]


class Launcher(str, enum.Enum):
    """Where a search's workers run."""

    LOCAL = "local"  # processes on this machine (the default)
    SLURM = "slurm"  # a SLURM job array, one worker per task, through submitit

    @classmethod
    def parse(cls, value: Launcher | str, param: str = "launcher") -> Launcher:
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(m.value for m in cls)
            raise CoatnetError(
                f"{param} must be one of {allowed}, got {value!r}.", param=param
            ) from None


@dataclass(frozen=True)
class SlurmOptions:
    """What each array task asks SLURM for. ``time`` is SLURM's form (``4:00:00``,
    ``1-00:00:00``, ``90``: minutes); ``extra`` holds any other ``sbatch`` option by its long
    name without dashes (``{"qos": "high", "constraint": "a100"}``); ``setup`` lines run in the
    batch script before the worker starts (``module load ...``, ``source venv/bin/activate``)."""

    partition: str | None = None
    time: str = "4:00:00"
    cpus_per_task: int | None = None
    gpus_per_task: int | None = None
    mem_gb: float | None = None
    account: str | None = None
    folder: str = "runs/slurm/%j"
    signal_delay_s: int = 120
    max_requeues: int = 3
    extra: dict[str, str] = field(default_factory=dict)
    setup: tuple[str, ...] = ()
    cluster: str = "slurm"  # "local": submitit's local executor, no SLURM needed

    def checked(self) -> SlurmOptions:
        parse_slurm_time(self.time)
        for name in ("cpus_per_task", "gpus_per_task", "mem_gb"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise CoatnetError(f"slurm.{name} must be > 0, got {value}.", param=f"slurm.{name}")
        if self.cluster not in ("slurm", "local"):
            raise CoatnetError(
                f"slurm.cluster must be slurm or local, got {self.cluster!r}.",
                param="slurm.cluster",
            )
        return self


def parse_slurm_time(text: str) -> int:
    """Minutes in a SLURM time limit: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", str(text).strip())
    if match is None:
        raise CoatnetError(
            f"slurm.time must be a SLURM time limit such as 4:00:00, 1-00:00:00 or 90 "
            f"(minutes), got {text!r}.",
            param="slurm.time",
        )
    days, a, b, c = (int(g) if g is not None else None for g in match.groups())
    if days is not None:  # D-HH, D-HH:MM, D-HH:MM:SS
        seconds = days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    elif c is not None:  # HH:MM:SS
        seconds = a * 3600 + b * 60 + c
    elif b is not None:  # MM:SS
        seconds = a * 60 + b
    else:  # MM
        seconds = a * 60
    if seconds < 60:
        raise CoatnetError(
            f"slurm.time must be at least one minute, got {text!r}.", param="slurm.time"
        )
    return -(-seconds // 60)


def _submitit() -> ModuleType:
    try:
        return importlib.import_module("submitit")
    except ImportError as exc:
        raise CoatnetError(
            f"launcher slurm submits through the Python package 'submitit', which is not "
            f"installed ({exc}); install it with: pip install 'coatnet-nas[slurm]'.",
            param="launcher",
        ) from None


class SlurmWorker:
    """One array task: :func:`~coatnet_nas.search.workers.run_worker` with ``kwargs``.

    Pickled by submitit and called in the task. A stop signal ends the current trial as
    ``interrupted`` (re-queued in the study); on submitit's timeout signal the task is then
    requeued through :meth:`checkpoint` (submitit's Checkpointable protocol: the same worker
    again; the study holds all the state)."""

    def __init__(self, kwargs: dict[str, Any], index: int):
        self.kwargs = kwargs
        self.index = index

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)

    def __call__(self) -> int:
        import torch

        from coatnet_nas.search.workers import run_worker
        from coatnet_nas.threads import usable_cpus

        torch.set_num_threads(usable_cpus())  # the cores SLURM gave this task
        timeout_signal = signal.SIGUSR2
        requeue = signal.getsignal(timeout_signal)  # submitit's checkpoint-and-requeue handler
        caught: list[int] = []

        def stop(signum: int, _frame: Any) -> None:
            if caught:  # one stop at a time: the trial is being re-queued already
                return
            caught.append(signum)
            raise KeyboardInterrupt

        previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, timeout_signal)}
        try:
            return run_worker(**self.kwargs, worker_index=self.index)
        except KeyboardInterrupt:
            if caught and caught[0] == timeout_signal and callable(requeue):
                requeue(timeout_signal, None)  # checkpoint(), scontrol requeue, exit
            sys.exit(128 + (caught[0] if caught else signal.SIGINT))
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def ready_to_submit(options: SlurmOptions) -> ModuleType:
    """submitit, once the settings and this machine can submit (checked before any work)."""
    options.checked()
    submitit = _submitit()
    if options.cluster == "slurm" and shutil.which("sbatch") is None:
        raise CoatnetError(
            "launcher slurm submits with SLURM's sbatch, which is not on PATH here: run the "
            "search on a login node of the cluster (or use launcher local).",
            param="launcher",
        )
    return submitit


def launch_slurm(
    workers: int,
    kwargs: dict[str, Any],
    options: SlurmOptions,
    *,
    name: str = "coatnet-worker",
    on_submitted: Callable[[list[str]], None] | None = None,
) -> list[str]:
    """Submit ``workers`` tasks of :class:`SlurmWorker` as one array and wait for them.

    Returns a note for each task that failed (the others went on; the study holds what it
    finished). Ctrl-C cancels the tasks (each re-queues its trial) and re-raises.
    """
    submitit = ready_to_submit(options)
    Path(options.folder.split("%", 1)[0]).mkdir(parents=True, exist_ok=True)
    executor = submitit.AutoExecutor(
        folder=options.folder,
        cluster=options.cluster,
        slurm_max_num_timeout=options.max_requeues,
        local_max_num_timeout=options.max_requeues,
    )
    executor.update_parameters(**_parameters(options, workers, name))
    jobs = executor.submit_array([SlurmWorker(kwargs, i) for i in range(workers)])
    if on_submitted is not None:
        on_submitted([job.job_id for job in jobs])
    notes: list[str] = []
    try:
        for i, job in enumerate(jobs):
            try:
                job.result()
            except Exception as exc:  # a failed task: the others go on
                reason = str(exc).strip().splitlines()[-1][:300] if str(exc) else repr(exc)
                notes.append(
                    f"SLURM worker {i} (job {job.job_id}) failed: {reason}; its trial was "
                    f"re-queued and the other workers went on (log: {job.paths.stderr})."
                )
    except KeyboardInterrupt:
        for job in jobs:
            job.cancel(check=False)
        raise
    return notes


def _parameters(options: SlurmOptions, workers: int, name: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "name": name,
        "timeout_min": parse_slurm_time(options.time),
        "tasks_per_node": 1,
        "nodes": 1,
        "cpus_per_task": options.cpus_per_task,
        "mem_gb": options.mem_gb,
    }
    if options.cluster == "slurm":
        params.update(
            slurm_partition=options.partition,
            slurm_account=options.account,
            slurm_array_parallelism=workers,
            slurm_signal_delay_s=options.signal_delay_s,
            slurm_gpus_per_task=options.gpus_per_task,
            slurm_setup=list(options.setup) or None,
            slurm_additional_parameters=dict(options.extra) or None,
        )
    return params
