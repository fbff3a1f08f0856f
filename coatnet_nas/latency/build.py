"""``build_table``: measure every kind and a few whole models on this device, resumably.

Progress is written atomically after every measurement; a rerun with the same output loads it,
checks it was measured on the same configuration, and measures only what is missing. A build
stopped by a signal (Ctrl-C, SIGTERM) saves what it measured with ``interrupted`` set to the
signal's name (``complete`` stays false); the build that completes it clears it.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from coatnet_nas import signals
from coatnet_nas.builder import build_model
from coatnet_nas.cost import estimate_cost
from coatnet_nas.errors import CoatnetError
from coatnet_nas.latency.fit import fit_correction, fit_regressors
from coatnet_nas.latency.kinds import BlockKind
from coatnet_nas.latency.modules import kind_module
from coatnet_nas.latency.predict import group_sums_ms
from coatnet_nas.latency.table import Calibration, Entry, LatencyTable, TableMeta
from coatnet_nas.latency.timing import (
    Timing,
    device_name,
    parse_device,
    time_rounds,
)
from coatnet_nas.spec import ModelSpec, spec_from_dict

__all__ = ["Progress", "build_table", "current_meta", "measure_spec"]

# on_progress(done, total, what): called before each measurement and once at the end.
Progress = Callable[[int, int, str], None]


def current_meta(
    device: str = "cpu",
    threads: int = 1,
    batch: int = 1,
    channels_last: bool = False,
    **extra: object,
) -> TableMeta:
    """The configuration measured here and now (device, its name, torch, threads, ...)."""
    from coatnet_nas import __version__

    if threads < 1:
        raise CoatnetError(f"threads must be >= 1, got {threads}.", param="threads")
    if batch < 1:
        raise CoatnetError(f"batch must be >= 1, got {batch}.", param="batch")
    dev = parse_device(device)
    return TableMeta(
        device=str(dev),
        device_name=device_name(dev),
        torch_version=torch.__version__,
        threads=threads,
        batch=batch,
        dtype="float32",
        channels_last=channels_last,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        tool_version=__version__,
        **extra,  # type: ignore[arg-type]
    )


def _prepare(module: torch.nn.Module, x: torch.Tensor, meta: TableMeta):
    dev = torch.device(meta.device)
    module = module.to(dev)
    x = x.to(dev)
    if meta.channels_last:
        module = module.to(memory_format=torch.channels_last)
        if x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
    return module, x


def measure_spec(
    spec: ModelSpec,
    meta: TableMeta,
    *,
    warmup: int | None = None,
    repeats: int | None = None,
    model: torch.nn.Module | None = None,
) -> Timing:
    """Time ``spec``'s whole model end to end on ``meta``'s configuration (seconds), the way a
    table times its models: one untimed call before each timed one. ``model`` is ``spec``
    built already (it is put in eval mode and on the configuration's device and layout)."""
    run, _ = _spec_runner(spec, meta, model)
    samples = time_rounds(
        [run],
        torch.device(meta.device),
        threads=meta.threads,
        rounds=meta.repeats if repeats is None else repeats,
        per_round=1,
        warmup=meta.warmup if warmup is None else warmup,
    )
    return Timing.of(samples[0])


def _kind_runner(kind: BlockKind, meta: TableMeta) -> tuple[Callable[[], object], int]:
    built = kind_module(kind, meta.batch)
    module, x = _prepare(built.module, built.example, meta)
    return (lambda: module(x)), built.blocks


def _spec_runner(
    spec: ModelSpec, meta: TableMeta, model: torch.nn.Module | None = None
) -> tuple[Callable[[], object], int]:
    model = (model if model is not None else build_model(spec, initialize=False)).eval()
    model, x = _prepare(model, torch.randn(meta.batch, spec.in_chans, *spec.image_size), meta)
    return (lambda: model(x)), 1


def _entry(kind: dict, samples_ms: list[float]) -> Entry:
    stats = Timing.of(samples_ms)
    return Entry(
        kind=kind,
        median_ms=max(stats.median_s, 1e-6),
        iqr_ms=stats.iqr_s,
        mad_ms=stats.mad_s,
        repeats=stats.repeats,
        samples_ms=samples_ms,
    )


def _calibration(spec: ModelSpec, samples_ms: list[float]) -> Calibration:
    stats = Timing.of(samples_ms)
    return Calibration(
        spec=spec.to_dict(),
        flops=estimate_cost(spec).flops,
        measured_ms=max(stats.median_s, 1e-6),
        iqr_ms=stats.iqr_s,
        samples_ms=samples_ms,
    )


def _spec_key(spec: ModelSpec) -> str:
    data = {**spec.to_dict(), "name": ""}
    return json.dumps(data, sort_keys=True)


def _resume(out: Path | None, meta: TableMeta) -> LatencyTable:
    if out is None or not out.exists():
        return LatencyTable(meta=meta)
    table = LatencyTable.load(out, param="out")
    table.check_matches(source=f"out {out} (resuming)", param="out", **meta.config())
    if (table.meta.warmup, table.meta.repeats) != (meta.warmup, meta.repeats):
        table.meta.warmup, table.meta.repeats = meta.warmup, meta.repeats
    return table


def build_table(
    kinds: Sequence[BlockKind],
    calibration: Sequence[ModelSpec] = (),
    *,
    out: str | Path | None = None,
    device: str = "cpu",
    threads: int = 1,
    batch: int = 1,
    channels_last: bool = False,
    warmup: int = 3,
    repeats: int = 20,
    per_round: int = 1,
    image_size: tuple[int, int] | None = None,
    source: str = "",
    recalibrate: bool = False,
    on_progress: Progress | None = None,
) -> LatencyTable:
    """Measure ``kinds`` and time the ``calibration`` models end to end, then fit.

    Everything is timed in the same round-robin rounds (``per_round`` timed calls each, until
    every kind and model has ``repeats`` samples), so machine drift hits all alike. With ``out``,
    the table is saved after every round and an existing file there is resumed: what has enough
    samples is kept, the rest continues (same configuration required, else a
    :class:`CoatnetError` naming what differs). ``recalibrate`` times the calibration models
    again and re-fits the correction: a machine whose speed drifted since the table was built
    (a shared VM, another power mode) gets today's scale in seconds, not a new table.
    """
    if repeats < 1 or warmup < 0:
        raise CoatnetError(
            f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}.", param="repeats"
        )
    meta = current_meta(
        device,
        threads,
        batch,
        channels_last,
        image_size=image_size,
        source=source,
        warmup=warmup,
        repeats=repeats,
    )
    path = Path(out) if out is not None else None
    table = _resume(path, meta)
    if recalibrate:
        table.calibration = {}
    kinds = list(dict((k.key, k) for k in kinds).values())
    specs = list(dict((_spec_key(s), s) for s in calibration).values())
    have = {k.key: table.entries[k.key].samples_ms for k in kinds if k.key in table.entries}
    have |= {
        key: table.calibration[key].samples_ms
        for key in map(_spec_key, specs)
        if key in table.calibration
    }
    todo_kinds = [k for k in kinds if len(have.get(k.key, [])) < repeats]
    todo_specs = [s for s in specs if len(have.get(_spec_key(s), [])) < repeats]
    missing = [repeats - len(have.get(k.key, [])) for k in todo_kinds]
    missing += [repeats - len(have.get(_spec_key(s), [])) for s in todo_specs]
    rounds = math.ceil(max(missing, default=0) / per_round)
    report = on_progress or (lambda done, total, what: None)
    table.complete = False
    runners: list = []

    def record(index: int, samples: list[list[float]]) -> None:
        for kind, (_, blocks), own in zip(todo_kinds, runners, samples, strict=False):
            old = have.get(kind.key, [])
            have[kind.key] = [*old, *(1e3 * t / blocks for t in own)]
            table.entries[kind.key] = _entry(kind.to_dict(), have[kind.key])
        for spec, own in zip(todo_specs, samples[len(todo_kinds) :], strict=True):
            key = _spec_key(spec)
            have[key] = [*have.get(key, []), *(1e3 * t for t in own)]
            table.calibration[key] = _calibration(spec, have[key])
        if path is not None:
            table.save(path)
        report(index + 1, rounds, f"round {index + 1}/{rounds}")

    try:
        for i, kind in enumerate(todo_kinds):
            report(0, rounds, f"building {i + 1}/{len(todo_kinds)} {kind.key}")
            runners.append(_kind_runner(kind, table.meta))
        runners += [_spec_runner(spec, table.meta) for spec in todo_specs]
        time_rounds(
            [run for run, _ in runners],
            torch.device(table.meta.device),
            threads=table.meta.threads,
            rounds=rounds,
            per_round=per_round,
            warmup=table.meta.warmup,
            on_round=record,
        )
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: keep the rounds measured, say why
        table.interrupted = signals.stop_name(exc)
        if path is not None:
            with signals.exit_at_once():  # a second stop during the save exits at once
                table.save(path)
        raise
    report(rounds, rounds, "fitting")
    table.regressors = fit_regressors(table)
    points = [spec_from_dict(c.spec) for c in table.calibration.values()]
    table.correction = fit_correction(
        [group_sums_ms(s, table) for s in points],
        [c.measured_ms for c in table.calibration.values()],
        [c.flops for c in table.calibration.values()],
    )
    table.complete, table.interrupted = True, None
    if path is not None:
        table.save(path)
    return table
