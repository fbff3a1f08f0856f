"""Predicting a spec's end-to-end latency from a table, without building anything.

Each stage's time is the sum over its kinds of (count × per-block ms): the measured median when
the table holds that exact kind, else the group's regressor on the kind's closed-form features.
The whole-model correction (fitted on calibration models timed end to end while the table was
built) then scales each block type's share and adds the model's own overhead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coatnet_nas.errors import CoatnetError
from coatnet_nas.latency.fit import correction_group, kind_features
from coatnet_nas.latency.kinds import BlockKind, spec_kinds
from coatnet_nas.latency.table import LatencyTable
from coatnet_nas.limits import listed
from coatnet_nas.spec import ModelSpec

__all__ = [
    "LatencyBreakdown",
    "StageLatency",
    "check_table_covers",
    "coverage_problem",
    "estimate_latency",
    "group_sums_ms",
    "latency_breakdown",
]


@dataclass(frozen=True)
class StageLatency:
    name: str
    type: str
    ms: float
    measured_kinds: int  # kinds looked up exactly; the rest were interpolated
    interpolated_kinds: int


@dataclass(frozen=True)
class LatencyBreakdown:
    """Predicted end-to-end latency: corrected stage times plus the model's own overhead."""

    total_ms: float
    overhead_ms: float
    stages: tuple[StageLatency, ...]

    @property
    def kinds(self) -> tuple[int, int]:
        """(block kinds looked up exactly, block kinds interpolated) over all stages."""
        return (
            sum(s.measured_kinds for s in self.stages),
            sum(s.interpolated_kinds for s in self.stages),
        )

    def to_dict(self) -> dict:
        return {
            "predicted": self.total_ms,
            "overhead_ms": self.overhead_ms,
            "stages": [vars(s) for s in self.stages],
        }


def _kind_ms(kind: BlockKind, table: LatencyTable) -> float | None:
    ms = table.kind_ms(kind)
    if ms is not None:
        return ms
    model = table.regressors.get(kind.group)
    if model is None:
        return None
    features = kind_features(kind)
    return model.intercept + sum(c * x for c, x in zip(model.coef, features, strict=True))


def _stage_rows(spec: ModelSpec, table: LatencyTable) -> list[StageLatency]:
    rows, missing = [], []
    for stage in spec_kinds(spec):
        total, exact, guessed = 0.0, 0, 0
        for kind, count in stage.kinds:
            ms = _kind_ms(kind, table)
            if ms is None:
                missing.append(kind.group)
                continue
            total += count * ms
            if kind.key in table.entries:
                exact += 1
            else:
                guessed += 1
        rows.append(StageLatency(stage.name, stage.type, total, exact, guessed))
    if missing:
        have = sorted(table.regressors) or ["none"]
        raise CoatnetError(
            f"table: the latency table has no measurements of {listed(sorted(set(missing)))} "
            f"blocks used by spec {spec.name!r} (it covers {listed(have)}); build a table for a "
            "space or spec that uses them with 'coatnet latency table'.",
            param="table",
        )
    return rows


def group_sums_ms(spec: ModelSpec, table: LatencyTable) -> dict[str, float]:
    """The spec's per-block times summed per correction group, before the correction."""
    sums: dict[str, float] = {}
    for row in _stage_rows(spec, table):
        group = correction_group(row.type)
        sums[group] = sums.get(group, 0.0) + row.ms
    return sums


def latency_breakdown(
    spec: ModelSpec, table: LatencyTable, image_size: int | Sequence[int] | None = None
) -> LatencyBreakdown:
    """Predicted per-stage and total milliseconds of ``spec`` (at ``image_size`` if given)."""
    if image_size is not None:
        spec = spec.with_image_size(image_size)
    corr = table.correction
    offset = corr.offset_ms
    rows = [
        StageLatency(
            r.name,
            r.type,
            r.ms * corr.scales.get(correction_group(r.type), corr.scale),
            r.measured_kinds,
            r.interpolated_kinds,
        )
        for r in _stage_rows(spec, table)
    ]
    return LatencyBreakdown(sum(r.ms for r in rows) + offset, offset, tuple(rows))


def estimate_latency(
    spec: ModelSpec, table: LatencyTable, image_size: int | Sequence[int] | None = None
) -> float:
    """Predicted end-to-end forward latency of ``spec`` in seconds on the table's configuration."""
    return latency_breakdown(spec, table, image_size).total_ms / 1e3


def coverage_problem(
    spec: ModelSpec, table: LatencyTable, breakdown: LatencyBreakdown | None = None
) -> str | None:
    """Why the table is a poor fit for ``spec`` (another resolution, none of its blocks
    measured), or None. A table extrapolates through its regressors; far from its measurements
    that is a guess, and a user should hear so before trusting it."""
    size = table.meta.image_size
    if size is not None and tuple(size) != tuple(spec.image_size):
        return (
            f"the table was measured at {size[0]}x{size[1]} but {spec.name!r} runs at "
            f"{spec.image_size[0]}x{spec.image_size[1]}"
        )
    exact, guessed = (breakdown or latency_breakdown(spec, table)).kinds
    if exact == 0:
        return f"none of the {guessed} block kinds of {spec.name!r} was measured in the table"
    return None


def check_table_covers(specs: Sequence[ModelSpec], table: LatencyTable) -> None:
    """Refuse a table made for other models (another resolution, or none of their blocks
    measured) before a search relies on it for every trial."""
    for spec in specs:
        problem = coverage_problem(spec, table)
        if problem is not None:
            raise CoatnetError(
                f"table: {problem}; build one for these models with 'coatnet latency table' "
                "(for a search: its space, at the target resolution).",
                param="table",
            )
