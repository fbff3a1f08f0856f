"""Iso-budget layout comparison, as in the CoAtNet paper (generalization vs. capacity).

``run_compare(config, out_dir)`` fits every layout (``C-C-T-T``, ..., ``ViT``) to one FLOPs
budget, trains each in every data regime with every seed (resumably), and ``summarize`` +
``write_outputs`` turn the runs into tables, the two rankings, CSV/JSON and a PNG figure.

Modules: ``config`` (what a comparison is), ``layouts`` (layout words, iso-FLOPs fitting),
``job`` (one run and its data), ``pool`` (worker processes), ``runner`` (the resumable loop),
``store`` (results file), ``analysis`` (stats, rankings, the paper) and ``report`` (files).
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
    DEFAULT_TRAIN,
    CompareConfig,
    CompareRecipe,
    Holdout,
    Recipe,
    Regime,
    Vary,
    parse_regimes,
    run_key,
)
from coatnet_nas.compare.job import (
    CompareEvent,
    Job,
    SizeChoice,
    clean_metrics,
    natural_image_size,
    regime_data,
    run_job,
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
from coatnet_nas.compare.runner import CompareRun, run_compare
from coatnet_nas.compare.store import RunStore

__all__ = [
    "DEFAULT_LAYOUTS",
    "DEFAULT_REGIMES",
    "DEFAULT_TRAIN",
    "PAPER_RANKINGS",
    "CompareConfig",
    "CompareEvent",
    "CompareRecipe",
    "CompareRun",
    "Entrant",
    "Holdout",
    "Job",
    "Layout",
    "PaperComparison",
    "Ranking",
    "Recipe",
    "Regime",
    "Row",
    "RunStore",
    "SizeChoice",
    "Stat",
    "Summary",
    "Vary",
    "aggregate",
    "clean_metrics",
    "compare_with_paper",
    "fit_layout",
    "fit_layouts",
    "instantiate",
    "natural_image_size",
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
