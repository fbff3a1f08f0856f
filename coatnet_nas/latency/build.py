"""``build_table``: measure every kind and a few whole models on this device, resumably.

Progress is written atomically after every measurement; a rerun with the same output loads it,
checks it was measured on the same configuration, and measures only what is missing.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from coatnet_nas.builder import build_model
from coatnet_nas.cost import estimate_cost
from coatnet_nas.errors import CoatnetError
from coatnet_nas.latency.fit import fit_correction, fit_regressors
from coatnet_nas.latency.kinds import BlockKind
from coatnet_nas.latency.modules import kind_module
from coatnet_nas.latency.predict import block_sum_ms
from coatnet_nas.latency.table import Calibration, Entry, LatencyTable, TableMeta
from coatnet_nas.latency.timing import device_name, parse_device, time_callable
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
    spec: ModelSpec, meta: TableMeta, *, warmup: int | None = None, repeats: int | None = None
):
    """Time ``spec``'s whole model end to end on ``meta``'s configuration (a :class:`Timing`)."""
    model = build_model(spec, initialize=False).eval()
    x = torch.randn(meta.batch, spec.in_chans, *spec.image_size)
    model, x = _prepare(model, x, meta)
    return time_callable(
        lambda: model(x),
        torch.device(meta.device),
        threads=meta.threads,
        warmup=meta.warmup if warmup is None else warmup,
        repeats=meta.repeats if repeats is None else repeats,
    )


def _measure_kind(kind: BlockKind, meta: TableMeta) -> Entry:
    built = kind_module(kind, meta.batch)
    module, x = _prepare(built.module, built.example, meta)
    timing = time_callable(
        lambda: module(x),
        torch.device(meta.device),
        threads=meta.threads,
        warmup=meta.warmup,
        repeats=meta.repeats,
    )
    per = 1e3 / built.blocks
    return Entry(
        kind=kind.to_dict(),
        median_ms=max(timing.median_s * per, 1e-6),
        iqr_ms=timing.iqr_s * per,
        mad_ms=timing.mad_s * per,
        repeats=timing.repeats,
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
    image_size: tuple[int, int] | None = None,
    source: str = "",
    on_progress: Progress | None = None,
) -> LatencyTable:
    """Measure ``kinds`` and time the ``calibration`` models end to end, then fit.

    With ``out``, the table is saved after every measurement and an existing file there is
    resumed (same configuration required, else a :class:`CoatnetError` naming what differs).
    """
    if repeats < 1 or warmup < 0:
        raise CoatnetError(
            f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}.", param="repeats"
        )
    meta = current_meta(
        device, threads, batch, channels_last,
        image_size=image_size, source=source, warmup=warmup, repeats=repeats,
    )  # fmt: skip
    path = Path(out) if out is not None else None
    table = _resume(path, meta)
    todo_kinds = [k for k in dict((k.key, k) for k in kinds).values() if k.key not in table.entries]
    todo_specs = [s for s in calibration if _spec_key(s) not in table.calibration]
    total = len(todo_kinds) + len(todo_specs)
    report = on_progress or (lambda done, total, what: None)
    table.complete = False
    for i, kind in enumerate(todo_kinds):
        report(i, total, kind.key)
        table.entries[kind.key] = _measure_kind(kind, table.meta)
        if path is not None:
            table.save(path)
    for j, spec in enumerate(todo_specs):
        report(len(todo_kinds) + j, total, f"model {spec.layout} {list(spec.widths)}")
        timing = measure_spec(spec, table.meta)
        table.calibration[_spec_key(spec)] = Calibration(
            spec=spec.to_dict(),
            flops=estimate_cost(spec).flops,
            measured_ms=timing.median_s * 1e3,
            iqr_ms=timing.iqr_s * 1e3,
        )
        if path is not None:
            table.save(path)
    report(total, total, "fitting")
    table.regressors = fit_regressors(table)
    points = [spec_from_dict(c.spec) for c in table.calibration.values()]
    table.correction = fit_correction(
        [block_sum_ms(s, table) for s in points],
        [c.measured_ms for c in table.calibration.values()],
        [c.flops for c in table.calibration.values()],
    )
    table.complete = True
    if path is not None:
        table.save(path)
    return table
