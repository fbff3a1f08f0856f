"""Iso-budget layout comparison, as in the CoAtNet paper (generalization vs. capacity).

``run_compare(config, out_dir)`` fits every layout (``C-C-T-T``, ..., ``ViT``) to one FLOPs
budget, trains each in every data regime with every seed (resumably), and ``summarize`` +
``write_outputs`` turn the runs into tables, the two rankings, CSV/JSON and a PNG figure.
"""

from __future__ import annotations

from coatnet_nas.compare.analysis import (
    PAPER_RANKINGS,
    PaperComparison,
    Ranking,
    Row,
    Stat,
    aggregate,
    compare_with_paper,
    rankings,
)
from coatnet_nas.compare.config import (
    DEFAULT_LAYOUTS,
    DEFAULT_REGIMES,
    CompareConfig,
    Recipe,
    Regime,
    parse_regimes,
    run_key,
)
from coatnet_nas.compare.layouts import (
    Entrant,
    Layout,
    fit_layout,
    fit_layouts,
    instantiate,
    parse_layouts,
    vit_stride,
)
from coatnet_nas.compare.report import Summary, plot, summarize, write_outputs
from coatnet_nas.compare.runner import (
    CompareEvent,
    CompareRun,
    Job,
    clean_metrics,
    regime_data,
    run_compare,
    run_job,
)
from coatnet_nas.compare.store import RunStore

__all__ = [
    "DEFAULT_LAYOUTS",
    "DEFAULT_REGIMES",
    "PAPER_RANKINGS",
    "CompareConfig",
    "CompareEvent",
    "CompareRun",
    "Entrant",
    "Job",
    "Layout",
    "PaperComparison",
    "Ranking",
    "Recipe",
    "Regime",
    "Row",
    "RunStore",
    "Stat",
    "Summary",
    "aggregate",
    "clean_metrics",
    "compare_with_paper",
    "fit_layout",
    "fit_layouts",
    "instantiate",
    "parse_layouts",
    "parse_regimes",
    "plot",
    "rankings",
    "regime_data",
    "run_compare",
    "run_job",
    "run_key",
    "summarize",
    "vit_stride",
    "write_outputs",
]
