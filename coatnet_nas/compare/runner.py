"""Run every (layout, regime, seed) of a comparison, resumably, in-process or in K processes.

Finished runs are appended to the results file (:class:`~coatnet_nas.compare.store.RunStore`) as
they end, so an interruption loses only runs in flight; one run is trained by
:func:`~coatnet_nas.compare.job.run_job`, and ``workers > 1`` hands the runs to
:func:`~coatnet_nas.compare.pool.run_workers`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from coatnet_nas import signals
from coatnet_nas.compare.capacity_run import CAPACITY, execute, plan_capacity
from coatnet_nas.compare.config import CompareConfig, canonical_fingerprint, run_key
from coatnet_nas.compare.job import CompareEvent, Job, load_data, regime_data
from coatnet_nas.compare.layouts import Entrant, fit_layouts, parse_layouts
from coatnet_nas.compare.pool import run_workers
from coatnet_nas.compare.store import RunStore
from coatnet_nas.data import ProxyData
from coatnet_nas.data.devices import resolve_device
from coatnet_nas.errors import CoatnetError
from coatnet_nas.scaling import scale_spec
from coatnet_nas.spec import ModelSpec, validation_reason
from coatnet_nas.train import ProgressInfo, spec_for_data


@dataclass
class CompareRun:
    """The outcome: fitted layouts, the data, and every finished run of this comparison.

    ``records`` are the fixed-budget runs of the regimes, ``capacity`` the runs trained to a
    plateau (empty when capacity is not measured).
    """

    config: CompareConfig
    out_dir: Path
    entrants: list[Entrant]
    data: dict[str, Any]
    regime_sizes: dict[str, int]
    records: list[dict[str, Any]]
    capacity: list[dict[str, Any]] = field(default_factory=list)
    ran: int = 0
    resumed: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def budget(self) -> int:
        return self.entrants[0].budget


def adapted_base(config: CompareConfig, data: ProxyData) -> ModelSpec:
    """The base spec at the data's size/classes/channels, depth-scaled, with the recipe's
    stochastic depth: every layout is instantiated from this."""
    base = scale_spec(config.base, 1.0, config.depth_mult)
    return spec_for_data(base, data, config.recipe.train.drop_path_rate)


def check_config(config: CompareConfig) -> None:
    """Fail fast (before loading data) on bad layouts, sizes and settings."""
    config.validate()
    parse_layouts(config.layouts, len(config.base.stages))
    h, w = config.train_size
    try:
        config.base.with_image_size((h, w))
    except ValidationError as exc:
        raise CoatnetError(
            f"image_size {h}x{w}: {validation_reason(exc)}", param="image_size"
        ) from None


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
    """Fit the layouts, then train every run not already in ``out_dir``'s results file: the
    fixed-budget runs of every regime, then (``config.capacity``) one run to a plateau per layout
    and seed.

    Re-running the same comparison skips finished runs (a run whose fitted spec changed is run
    again); ``fresh`` discards the stored runs first. ``on_event`` sees every start, throttled
    progress and end; an exception it raises stops the comparison (finished runs stay stored).
    Runs that fail with an exception are reported in ``errors`` and not stored, so the next call
    retries them.
    """
    start = time.perf_counter()
    if workers < 1:
        raise CoatnetError(f"workers must be >= 1, got {workers}.", param="workers")
    check_config(config)
    dev = resolve_device(device)
    data = load_data(config, dev)
    base = adapted_base(config, data)
    layouts = parse_layouts(config.layouts, len(base.stages))
    entrants = fit_layouts(base, layouts, config.flops, config.vary.value)
    jobs = plan(config, entrants) + plan_capacity(config, base, layouts, entrants[0].budget)
    store = RunStore(out_dir)  # only now: a comparison that cannot start leaves no files
    done = store.open(config.fingerprint(), fresh=fresh, canonical=canonical_fingerprint)
    pending = [j for j in jobs if not j.matches(done.get(j.key))]
    errors: list[str] = []
    emit = on_event or (lambda event: None)
    in_flight: set[str] = set()

    def finished(event: CompareEvent) -> None:
        if event.job is not None and event.kind == "start":
            in_flight.add(event.job.key)
        elif event.job is not None and event.kind in ("done", "error"):
            in_flight.discard(event.job.key)
        if event.kind == "done" and event.record is not None and event.job is not None:
            store.append(event.record)
            done[event.job.key] = event.record
        elif event.kind == "error" and event.job is not None:
            errors.append(f"{event.job.key}: {event.message}")
        emit(event)

    emit(CompareEvent("plan", total=len(pending), resumed=len(jobs) - len(pending)))
    try:
        if workers == 1 or len(pending) <= 1:
            _run_inline(pending, data, config, str(dev), threads, finished)
        else:
            run_workers(pending, config, str(dev), min(workers, len(pending)), threads, finished)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: say why in the results folder
        with signals.exit_at_once():  # a second stop during this bookkeeping exits at once
            ended = sum(j.matches(done.get(j.key)) for j in jobs)
            store.mark_interrupted(signals.stop_name(exc), in_flight, ended, len(jobs) - ended)
        raise
    if not errors:
        store.clear_interrupted()
    records = [done[j.key] for j in jobs if j.matches(done.get(j.key))]
    return CompareRun(
        config=config,
        out_dir=store.out_dir,
        entrants=entrants,
        data=data.describe(),
        regime_sizes={
            r.name: len(regime_data(data, r, config.data_seed).train) for r in config.regimes
        },
        records=[r for r in records if r.get("kind", "fit") != CAPACITY],
        capacity=[r for r in records if r.get("kind") == CAPACITY],
        ran=len(pending) - len(errors),
        resumed=len(jobs) - len(pending),
        errors=errors,
        seconds=time.perf_counter() - start,
    )


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
            record = execute(job, data, config, device=device, threads=threads, progress=progress)
        except CoatnetError:
            raise
        except Exception as exc:  # one broken run must not take the comparison down
            emit(CompareEvent("error", job, message=f"{type(exc).__name__}: {exc}"[:2000]))
            continue
        emit(CompareEvent("done", job, record=record))
