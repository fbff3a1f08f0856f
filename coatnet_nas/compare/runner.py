"""Run every (layout, regime, seed) of a comparison, resumably, in-process or in K processes.

The data set is loaded once per process; a regime is a seeded, nested subset of its training
split, and all regimes share one validation split. After training, each run measures a *clean*
train loss and accuracy (eval mode, no augmentation, no label smoothing) on a fixed sample of its
own training data: the trainer's running loss mixes augmentation, stochastic depth and label
smoothing into the number, which would blur "how low can this layout drive the loss" (capacity).

Workers (``workers > 1``) are spawned processes that pull jobs from a queue; only the parent
writes the results file, one line per finished run, so an interruption loses only runs in flight.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import queue
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from coatnet_nas.compare.config import CompareConfig, Recipe, Regime, run_key
from coatnet_nas.compare.layouts import Entrant, fit_layouts, parse_layouts
from coatnet_nas.compare.store import RunStore
from coatnet_nas.data import ProxyData, Split, prepare_data
from coatnet_nas.data.devices import resolve_device
from coatnet_nas.errors import CoatnetError
from coatnet_nas.scaling import scale_spec
from coatnet_nas.spec import ModelSpec, spec_from_dict
from coatnet_nas.threads import cpu_threads
from coatnet_nas.train import ProgressInfo, build_for_data, spec_for_data, spec_problem, train_model


@dataclass(frozen=True)
class Job:
    """One run: a fitted layout trained on one regime with one seed."""

    key: str
    layout: str
    regime: Regime
    seed: int
    spec: dict[str, Any]


@dataclass
class CompareEvent:
    """Progress of a comparison, for displays.

    ``plan`` comes once, before any run (``total`` runs to do now, ``resumed`` already stored);
    then ``start``, throttled ``progress``, and ``done`` or ``error`` for every run.
    """

    kind: str
    job: Job | None = None
    record: dict[str, Any] | None = None
    info: ProgressInfo | None = None
    message: str | None = None
    worker: int = 0
    total: int = 0
    resumed: int = 0


@dataclass
class CompareRun:
    """The outcome: fitted layouts, the data, and every finished run of this comparison."""

    config: CompareConfig
    out_dir: Path
    entrants: list[Entrant]
    data: dict[str, Any]
    regime_sizes: dict[str, int]
    records: list[dict[str, Any]]
    ran: int = 0
    resumed: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def budget(self) -> int:
        return self.entrants[0].budget


# --- data ------------------------------------------------------------------------------------
def load_data(config: CompareConfig, device: str | torch.device = "cpu") -> ProxyData:
    """The full training pool and the shared validation split at the training image size."""
    return prepare_data(
        config.dataset, config.train_size, subset=1.0, val_fraction=config.val_fraction,
        seed=config.data_seed, device=device, data_dir=config.data_dir,
        in_chans=config.base.in_chans, holdout=config.holdout,
    )  # fmt: skip


def regime_data(data: ProxyData, regime: Regime, seed: int = 0) -> ProxyData:
    """``data`` with a seeded ``regime.fraction`` of its training split; nested across fractions.

    Normalization statistics stay those of the full pool, so every regime sees the same inputs.
    """
    n = len(data.train)
    keep = min(n, max(2, round(n * regime.fraction)))
    if keep == n:
        return data
    order = np.sort(np.random.default_rng(seed).permutation(n)[:keep])
    idx = torch.from_numpy(order).to(data.train.labels.device)
    return replace(data, train=Split(data.train.images[idx], data.train.labels[idx]))


@torch.inference_mode()
def clean_metrics(
    model: nn.Module, data: ProxyData, limit: int, batch_size: int = 512
) -> tuple[float, float]:
    """Cross-entropy and accuracy on the first ``limit`` training images, eval mode, unaugmented."""
    device = next(model.parameters()).device
    data = data.to(device)
    was_training = model.training
    model.eval()
    n = min(limit, len(data.train))
    loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    try:
        for start in range(0, n, batch_size):
            end = min(n, start + batch_size)
            images = data.normalize(data.train.images[start:end])
            labels = data.train.labels[start:end]
            logits = model(images).float()
            loss += F.cross_entropy(logits, labels, reduction="sum").double()
            correct += (logits.argmax(dim=1) == labels).sum()
    finally:
        model.train(was_training)
    return loss.item() / max(1, n), correct.item() / max(1, n)


# --- layouts ---------------------------------------------------------------------------------
def adapted_base(config: CompareConfig, data: ProxyData) -> ModelSpec:
    """The base spec at the data's size/classes/channels, depth-scaled, with the recipe's
    stochastic depth: every layout is instantiated from this."""
    base = scale_spec(config.base, 1.0, config.depth_mult)
    base = spec_for_data(base, data, config.recipe.drop_path_rate)
    return base


def check_config(config: CompareConfig) -> None:
    """Fail fast (before loading data) on bad layouts, sizes and settings."""
    config.validate()
    parse_layouts(config.layouts, len(config.base.stages))
    h, w = config.train_size
    try:
        config.base.with_image_size((h, w))
    except ValidationError as exc:
        raise CoatnetError(f"--image-size {h}x{w}: {spec_problem(exc)}") from None


def plan(config: CompareConfig, entrants: list[Entrant]) -> list[Job]:
    """All runs, seed-major so an interrupted comparison already covers every layout."""
    # JSON-normalized, so a spec read back from the results file compares equal.
    specs = {e.name: json.loads(json.dumps(e.spec.to_dict())) for e in entrants}
    return [
        Job(run_key(e.name, regime, seed), e.name, regime, seed, specs[e.name])
        for seed in config.seeds
        for regime in config.regimes
        for e in entrants
    ]


# --- one run ---------------------------------------------------------------------------------


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def run_job(
    job: Job,
    data: ProxyData,
    recipe: Recipe,
    *,
    data_seed: int = 0,
    device: str = "cpu",
    threads: int | None = None,
    progress: Callable[[ProgressInfo], None] | None = None,
) -> dict[str, Any]:
    """Train one run and return its record (JSON-ready; non-finite numbers become None)."""
    spec = spec_from_dict(job.spec, source=job.layout)
    sub = regime_data(data, job.regime, data_seed)
    planned = recipe.planned_steps(len(sub.train))
    config = recipe.train_config(job.seed, device, threads, eval_every=planned)  # final eval only
    with cpu_threads(threads):
        model = build_for_data(spec, sub, drop_path_rate=recipe.drop_path_rate, seed=job.seed)
        result = train_model(model, sub, config, progress=progress)
        if result.status == "diverged":
            loss, accuracy = float("nan"), float("nan")
        else:
            loss, accuracy = clean_metrics(model, sub, recipe.train_eval_images)
    val = result.val_accuracy if result.status != "diverged" else float("nan")
    return {
        "key": job.key, "layout": job.layout, "regime": job.regime.name,
        "fraction": job.regime.fraction, "seed": job.seed, "status": result.status,
        "reason": result.reason, "params": result.params, "flops": result.flops,
        "train_images": len(sub.train), "val_images": len(sub.val),
        "train_loss": _finite(loss), "train_accuracy": _finite(accuracy),
        "val_accuracy": _finite(val), "gap": _finite(accuracy - val),
        "running_train_loss": _finite(result.train_loss), "steps": result.steps,
        "epochs": round(result.epochs, 4), "seconds": round(result.seconds, 2),
        "images_per_second": round(result.images_per_second, 1), "device": result.device,
        "spec": job.spec, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip


# --- the whole comparison --------------------------------------------------------------------
def run_compare(
    config: CompareConfig,
    out_dir: str | Path,
    *,
    workers: int = 1,
    device: str = "auto",
    threads: int | None = None,
    fresh: bool = False,
    on_event: Callable[[CompareEvent], None] | None = None,
) -> CompareRun:
    """Fit the layouts, then train every run not already in ``out_dir``'s results file.

    Re-running the same comparison skips finished runs (a run whose fitted spec changed is run
    again). ``on_event`` sees every start, throttled progress and end; an exception it raises
    stops the comparison (finished runs stay stored). Runs that fail with an exception are
    reported in ``errors`` and not stored, so the next call retries them.
    """
    start = time.perf_counter()
    if workers < 1:
        raise CoatnetError(f"--workers must be >= 1, got {workers}.")
    check_config(config)
    dev = resolve_device(device)
    data = load_data(config, dev)
    base = adapted_base(config, data)
    layouts = parse_layouts(config.layouts, len(base.stages))
    entrants = fit_layouts(base, layouts, config.flops, config.vary)
    jobs = plan(config, entrants)
    store = RunStore(out_dir)  # only now: a comparison that cannot start leaves no files
    done = store.open(config.fingerprint(), fresh=fresh)
    pending = [j for j in jobs if done.get(j.key, {}).get("spec") != j.spec]
    errors: list[str] = []
    emit = on_event or (lambda event: None)

    def finished(event: CompareEvent) -> None:
        if event.kind == "done" and event.record is not None and event.job is not None:
            store.append(event.record)
            done[event.job.key] = event.record
        elif event.kind == "error" and event.job is not None:
            errors.append(f"{event.job.key}: {event.message}")
        emit(event)

    emit(CompareEvent("plan", total=len(pending), resumed=len(jobs) - len(pending)))

    if workers == 1 or len(pending) <= 1:
        _run_inline(pending, data, config, str(dev), threads, finished)
    else:
        _run_workers(pending, config, str(dev), min(workers, len(pending)), threads, finished)
    records = [done[j.key] for j in jobs if done.get(j.key, {}).get("spec") == j.spec]
    return CompareRun(
        config=config, out_dir=store.out_dir, entrants=entrants, data=data.describe(),
        regime_sizes={r.name: len(regime_data(data, r, config.data_seed).train)
                      for r in config.regimes},
        records=records, ran=len(pending) - len(errors), resumed=len(jobs) - len(pending),
        errors=errors, seconds=time.perf_counter() - start,
    )  # fmt: skip


def _run_inline(
    jobs: list[Job],
    data: ProxyData,
    config: CompareConfig,
    device: str,
    threads: int | None,
    emit: Callable[[CompareEvent], None],
) -> None:
    for job in jobs:
        emit(CompareEvent("start", job))

        def progress(info: ProgressInfo, job: Job = job) -> None:
            emit(CompareEvent("progress", job, info=info))

        try:
            record = run_job(
                job, data, config.recipe, data_seed=config.data_seed, device=device,
                threads=threads, progress=progress,
            )  # fmt: skip
        except CoatnetError:
            raise
        except Exception as exc:  # one broken run must not take the comparison down
            emit(CompareEvent("error", job, message=f"{type(exc).__name__}: {exc}"[:2000]))
            continue
        emit(CompareEvent("done", job, record=record))


def _run_workers(
    jobs: list[Job],
    config: CompareConfig,
    device: str,
    workers: int,
    threads: int | None,
    emit: Callable[[CompareEvent], None],
) -> None:
    """K spawned processes pull jobs from a queue; the parent relays their events."""
    ctx = mp.get_context("spawn")
    job_queue: Any = ctx.Queue()
    events: Any = ctx.Queue()
    for job in jobs:
        job_queue.put(job)
    for _ in range(workers):
        job_queue.put(None)
    per_worker = threads or max(1, (os.cpu_count() or 1) // workers)
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
                    kind, job, worker=worker,
                    record=payload if kind == "done" else None,
                    info=payload if kind == "progress" else None,
                    message=payload if kind == "error" else None,
                )
            )  # fmt: skip
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
        if now - last >= 1.0:
            last = now
            events.put(("progress", index, job, info))

    while True:
        job = jobs.get()
        if job is None:
            return
        events.put(("start", index, job, None))
        try:
            record = run_job(
                job, data, config.recipe, data_seed=config.data_seed, device=device,
                threads=threads, progress=lambda info, job=job: progress(info, job),
            )  # fmt: skip
        except Exception as exc:
            events.put(("error", index, job, f"{type(exc).__name__}: {exc}"[:2000]))
        else:
            events.put(("done", index, job, record))
