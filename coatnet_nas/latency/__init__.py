"""Measured latency tables and the predictor built on them.

``build_table`` measures, on one device configuration, every block kind a search space or spec
can produce (the builder's real modules) and a few whole models; ``estimate_latency`` and
``latency_breakdown`` predict a spec from the table without building it.
"""

from __future__ import annotations

from coatnet_nas._lazy import lazy_exports

_EXPORTS = {
    "BlockKind": "coatnet_nas.latency.kinds",
    "space_kinds": "coatnet_nas.latency.kinds",
    "spec_kinds": "coatnet_nas.latency.kinds",
    "kinds_of_specs": "coatnet_nas.latency.kinds",
    "sample_specs": "coatnet_nas.latency.kinds",
    "LatencyTable": "coatnet_nas.latency.table",
    "build_table": "coatnet_nas.latency.build",
    "current_meta": "coatnet_nas.latency.build",
    "measure_spec": "coatnet_nas.latency.build",
    "estimate_latency": "coatnet_nas.latency.predict",
    "latency_breakdown": "coatnet_nas.latency.predict",
    "LatencyBreakdown": "coatnet_nas.latency.predict",
    "check_table_covers": "coatnet_nas.latency.predict",
    "coverage_problem": "coatnet_nas.latency.predict",
    "LatencyReport": "coatnet_nas.latency.report",
    "latency_report": "coatnet_nas.latency.report",
    "TableRequest": "coatnet_nas.latency.request",
    "Timing": "coatnet_nas.latency.timing",
    "time_rounds": "coatnet_nas.latency.timing",
    "parse_device": "coatnet_nas.latency.timing",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
