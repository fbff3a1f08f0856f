"""A spec's latency, predicted from a table and/or measured here: :class:`LatencyReport`.

:func:`latency_report` is what ``coatnet build --latency`` shows (the command only renders it):
the prediction per stage beside its FLOPs, the end-to-end measurement on the table's
configuration (or on this machine's, without a table), and notes when the table was measured on
another machine or does not cover every block kind of the spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coatnet_nas.spec import ModelSpec

__all__ = ["LatencyReport", "latency_report"]


@dataclass
class LatencyReport:
    """``predicted`` (a :class:`~coatnet_nas.latency.predict.LatencyBreakdown`, None without a
    table), ``measured_ms``, per-stage rows with FLOPs, the table's device configuration and
    ``meta`` (the configuration timed on). ``machine_note`` says the table is from another
    machine; ``coverage`` names block kinds the table lacks (interpolated, larger error)."""

    spec: ModelSpec
    meta: Any
    predicted: Any = None
    measured_ms: float | None = None
    stages: list[dict] = field(default_factory=list)
    configuration: dict | None = None
    machine_note: str | None = None
    coverage: str | None = None

    def to_dict(self) -> dict[str, Any]:
        p = self.predicted
        return {
            "predicted": p.total_ms if p else None,
            "measured": self.measured_ms,
            "overhead_ms": p.overhead_ms if p else None,
            "stages": self.stages,
            "configuration": self.configuration,
        }


def latency_report(
    spec: ModelSpec,
    table_path: str | Path | None = None,
    *,
    measure: bool = False,
    model: Any = None,
) -> LatencyReport:
    """Predict ``spec`` from the table at ``table_path`` and/or time it (``measure``; without a
    table, on this machine's configuration). Timing uses ``model`` when given (built once by
    the caller) and insists on the table's own device configuration, since a comparison across
    machines means nothing."""
    from coatnet_nas.cost import estimate_cost
    from coatnet_nas.latency.build import current_meta, measure_spec

    if table_path is None:
        import torch

        meta = current_meta(threads=torch.get_num_threads())
        report = LatencyReport(spec, meta)
    else:
        report = _predicted(spec, Path(table_path), measure)
        meta = report.meta
    if measure:
        timing = measure_spec(spec, meta, warmup=5, repeats=max(meta.repeats, 20), model=model)
        report.measured_ms = timing.median_s * 1e3
    flops = {row.name: row.flops for row in estimate_cost(spec).stages}
    if report.predicted is not None:
        report.stages = [
            {**vars(row), "flops": flops.get(row.name)} for row in report.predicted.stages
        ]
    return report


def _predicted(spec: ModelSpec, table_path: Path, measure: bool) -> LatencyReport:
    from coatnet_nas.latency.build import current_meta
    from coatnet_nas.latency.predict import coverage_problem, latency_breakdown
    from coatnet_nas.latency.table import LatencyTable

    table = LatencyTable.load(table_path)
    meta = table.meta
    here = current_meta(meta.device, meta.threads, meta.batch)
    mismatch = {k: here.config()[k] for k in ("device_name", "torch_version")}
    note = None
    if measure:  # timing here must happen on the table's own configuration
        table.check_matches(source=f"table {table_path}", **mismatch)
    elif any(v != meta.config()[k] for k, v in mismatch.items()):
        note = (
            f"{table_path} was measured on {meta.device_name} with torch {meta.torch_version}; "
            f"this machine has {mismatch['device_name']} and torch "
            f"{mismatch['torch_version']}: the prediction is for the table's machine"
        )
    predicted = latency_breakdown(spec, table)
    exact, guessed = predicted.kinds
    problem = coverage_problem(spec, table, predicted)
    if problem is None and guessed:
        problem = f"{guessed} of {exact + guessed} block kinds are not in the table"
    config = {k: v for k, v in meta.model_dump().items() if k in meta.config()}
    return LatencyReport(
        spec, meta, predicted, configuration=config, machine_note=note, coverage=problem
    )
