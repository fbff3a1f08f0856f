"""coatnet-nas: CoAtNet-family specs, a faithful builder, profiler, cost model and search.

The public API is re-exported here and imported lazily, so ``import coatnet_nas`` (and spec
validation) does not pay for torch until a model is actually built.
"""

from __future__ import annotations

from coatnet_nas._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "ModelSpec": "coatnet_nas.spec",
    "StageSpec": "coatnet_nas.spec",
    "StemSpec": "coatnet_nas.spec",
    "load_spec": "coatnet_nas.spec",
    "spec_from_dict": "coatnet_nas.spec",
    "parse_layout": "coatnet_nas.spec",
    "BlockType": "coatnet_nas.registry",
    "register_block_type": "coatnet_nas.registry",
    "block_types": "coatnet_nas.registry",
    "CoAtNet": "coatnet_nas.builder",
    "build_model": "coatnet_nas.builder",
    "profile_model": "coatnet_nas.profile",
    "count_flops": "coatnet_nas.profile",
    "ModelProfile": "coatnet_nas.profile",
    "estimate_cost": "coatnet_nas.cost",
    "Cost": "coatnet_nas.cost",
    "estimate_latency": "coatnet_nas.latency",
    "latency_breakdown": "coatnet_nas.latency",
    "LatencyTable": "coatnet_nas.latency",
    "build_table": "coatnet_nas.latency",
    "scale_spec": "coatnet_nas.scaling",
    "fit_to_budget": "coatnet_nas.scaling",
    "parse_flops": "coatnet_nas.units",
    "parse_params": "coatnet_nas.units",
    "CompareConfig": "coatnet_nas.compare",
    "run_compare": "coatnet_nas.compare",
    "ProxyRecipe": "coatnet_nas.proxies",
    "SearchConfig": "coatnet_nas.search",
    "load_space": "coatnet_nas.search",
    "run_search": "coatnet_nas.search",
    "prepare_data": "coatnet_nas.data",
    "ProxyData": "coatnet_nas.data",
    "DATASETS": "coatnet_nas.data",
    "fetch_dataset": "coatnet_nas.data",
    "TrainRecipe": "coatnet_nas.train",
    "Runtime": "coatnet_nas.train",
    "RunStatus": "coatnet_nas.train",
    "TrainConfig": "coatnet_nas.train",
    "TrainResult": "coatnet_nas.train",
    "EvalReport": "coatnet_nas.train",
    "train_model": "coatnet_nas.train",
    "train_spec": "coatnet_nas.train",
    "resolve_device": "coatnet_nas.train",
    "load_checkpoint": "coatnet_nas.train",
    "ExportFormat": "coatnet_nas.export",
    "ExportReport": "coatnet_nas.export",
    "export_model": "coatnet_nas.export",
    "runtime_latency": "coatnet_nas.export",
    "save_checkpoint": "coatnet_nas.train",
    "CoatnetError": "coatnet_nas.errors",
    "SpecError": "coatnet_nas.errors",
    "BudgetError": "coatnet_nas.errors",
    "DataError": "coatnet_nas.errors",
}

__all__ = [*_EXPORTS, "__version__"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
