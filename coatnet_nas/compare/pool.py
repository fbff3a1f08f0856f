"""K spawned worker processes that pull a comparison's jobs from a queue.

Each worker loads the data once and trains jobs until the queue says stop; it sends its events
(start, throttled progress, done, error) back to the parent, which alone writes the results file.
A worker whose parent has died stops at its next progress report.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import time
from collections.abc import Callable
from typing import Any

import torch

from coatnet_nas.compare.capacity_run import execute
from coatnet_nas.compare.config import CompareConfig
from coatnet_nas.compare.job import CompareEvent, Job, load_data
from coatnet_nas.errors import CoatnetError
from coatnet_nas.threads import threads_per_worker
from coatnet_nas.train import ProgressInfo

PROGRESS_INTERVAL = 1.0  # seconds between a worker's progress events


def run_workers(
    jobs: list[Job],
    config: CompareConfig,
    device: str,
    workers: int,
    threads: int | None,
    emit: Callable[[CompareEvent], None],
) -> None:
    """Train ``jobs`` in ``workers`` processes; relay their events to ``emit`` in the parent."""
    ctx = mp.get_context("spawn")
    job_queue: Any = ctx.Queue()
    events: Any = ctx.Queue()
    for job in jobs:
        job_queue.put(job)
    for _ in range(workers):
        job_queue.put(None)
    per_worker = threads or threads_per_worker(workers)
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(i, config, device, per_worker, job_queue, events, os.getpid()),
            daemon=True,
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    remaining = len(jobs)
    try:
        while remaining:
            try:
                kind, worker, job, payload = events.get(timeout=0.5)
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    codes = [p.exitcode for p in procs]
                    raise CoatnetError(
                        f"compare worker processes exited with {remaining} run(s) left "
                        f"(exit codes {codes}); finished runs are stored, run again to resume."
                    ) from None
                continue
            if kind in ("done", "error"):
                remaining -= 1
            emit(
                CompareEvent(
                    kind,
                    job,
                    worker=worker,
                    record=payload if kind == "done" else None,
                    info=payload if kind == "progress" else None,
                    message=payload if kind == "error" else None,
                )
            )
    finally:
        for p in procs:
            if p.is_alive() and remaining:
                p.terminate()
        for p in procs:
            p.join(timeout=10)


def _worker_main(
    index: int,
    config: CompareConfig,
    device: str,
    threads: int,
    jobs: Any,
    events: Any,
    parent: int,
) -> None:
    """A worker process: load the data once, then train jobs until the queue says stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    torch.set_num_threads(threads)
    data = load_data(config, device)
    last = 0.0

    def progress(info: ProgressInfo, job: Job) -> None:
        nonlocal last
        if os.getppid() != parent:  # the parent is gone: stop, its finished runs are stored
            os._exit(1)
        now = time.monotonic()
        if now - last >= PROGRESS_INTERVAL:
            last = now
            events.put(("progress", index, job, info))

    while True:
        job = jobs.get()
        if job is None:
            return
        events.put(("start", index, job, None))
        try:
            record = execute(
                job,
                data,
                config,
                device=device,
                threads=threads,
                progress=lambda info, job=job: progress(info, job),
            )
        except Exception as exc:
            events.put(("error", index, job, f"{type(exc).__name__}: {exc}"[:2000]))
        else:
            events.put(("done", index, job, record))
