"""Iso-budget layout comparison, as in the CoAtNet paper (generalization vs. capacity).

``run_compare(config, out_dir)`` fits every layout (``C-C-T-T``, ..., ``ViT``) to one FLOPs
budget, trains each in every data regime with every seed (resumably), and ``summarize`` +
``write_outputs`` turn the runs into tables, the two rankings, CSV/JSON and a PNG figure.

Modules: ``config`` (what a comparison is), ``layouts`` (layout words, iso-FLOPs fitting),
``job`` (one run and its data), ``pool`` (worker processes), ``runner`` (the resumable loop),
``store`` (results file), ``analysis`` (stats, rankings, the paper), ``capacity`` and
``capacity_run`` (runs trained to a plateau), ``measures`` (fitting speed vs capacity per layout),
``report`` (files) and ``preview`` (each layout's candidate scored by a proxy instead of trained).
Names load on first use, so the command line can read the defaults without importing torch.
"""

from coatnet_nas._lazy import lazy_exports

_EXPORTS = {
    "PAPER_RANKINGS": "coatnet_nas.compare.analysis",
    "PaperComparison": "coatnet_nas.compare.analysis",
    "Ranking": "coatnet_nas.compare.analysis",
    "Row": "coatnet_nas.compare.analysis",
    "Stat": "coatnet_nas.compare.analysis",
    "aggregate": "coatnet_nas.compare.analysis",
    "compare_with_paper": "coatnet_nas.compare.analysis",
    "rankings": "coatnet_nas.compare.analysis",
    "CapacityOptions": "coatnet_nas.compare.capacity",
    "Plateau": "coatnet_nas.compare.capacity",
    "train_to_plateau": "coatnet_nas.compare.capacity",
    "capacity_size": "coatnet_nas.compare.capacity_run",
    "LayoutMeasures": "coatnet_nas.compare.measures",
    "layout_measures": "coatnet_nas.compare.measures",
    "DEFAULT_LAYOUTS": "coatnet_nas.compare.config",
    "DEFAULT_REGIMES": "coatnet_nas.compare.config",
    "DEFAULT_TRAIN": "coatnet_nas.compare.config",
    "CompareConfig": "coatnet_nas.compare.config",
    "CompareRecipe": "coatnet_nas.compare.config",
    "Holdout": "coatnet_nas.compare.config",
    "Recipe": "coatnet_nas.compare.config",
    "Regime": "coatnet_nas.compare.config",
    "Vary": "coatnet_nas.compare.config",
    "parse_regimes": "coatnet_nas.compare.config",
    "run_key": "coatnet_nas.compare.config",
    "CompareEvent": "coatnet_nas.compare.job",
    "Job": "coatnet_nas.compare.job",
    "SizeChoice": "coatnet_nas.compare.job",
    "clean_metrics": "coatnet_nas.compare.clean",
    "natural_image_size": "coatnet_nas.compare.job",
    "regime_data": "coatnet_nas.compare.job",
    "run_job": "coatnet_nas.compare.job",
    "Entrant": "coatnet_nas.compare.layouts",
    "Layout": "coatnet_nas.compare.layouts",
    "fit_layout": "coatnet_nas.compare.layouts",
    "fit_layouts": "coatnet_nas.compare.layouts",
    "instantiate": "coatnet_nas.compare.layouts",
    "parse_layouts": "coatnet_nas.compare.layouts",
    "vit_stride": "coatnet_nas.compare.layouts",
    "Summary": "coatnet_nas.compare.report",
    "plot": "coatnet_nas.compare.report",
    "summarize": "coatnet_nas.compare.report",
    "write_outputs": "coatnet_nas.compare.report",
    "ProxyPreview": "coatnet_nas.compare.preview",
    "preview_compare": "coatnet_nas.compare.preview",
    "CompareRun": "coatnet_nas.compare.runner",
    "run_compare": "coatnet_nas.compare.runner",
    "RunStore": "coatnet_nas.compare.store",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
