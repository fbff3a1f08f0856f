"""Architecture search, split the way Optuna splits itself.

``space`` (what to sample), ``config`` (a study's stored settings, trial statuses), ``objective``
(how one trial is scored), ``strategies`` (samplers, pruners), ``storage`` (SQLAlchemy storages,
heartbeats), ``opening`` (create/resume by config), ``workers`` (processes pulling trials),
``study`` (``run_search``) and ``report`` (exports); ``dedupe`` (one evaluation per
architecture), ``liveness`` (reaping dead trials), ``runner`` (the trial loop), ``warmstart``
(known specs as first trials) and ``plots``.

Names load on first use: the command line reads :class:`Sampler` and :class:`Pruner` at start-up,
and importing Optuna and the model code for them would add seconds to every command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coatnet_nas._lazy import lazy_exports

if TYPE_CHECKING:
    from coatnet_nas.search.config import SearchConfig, TrialStatus
    from coatnet_nas.search.dedupe import arch_key
    from coatnet_nas.search.objective import Objective
    from coatnet_nas.search.opening import open_study
    from coatnet_nas.search.report import (
        Export,
        best_spec,
        best_trial,
        export_study,
        trial_rows,
    )
    from coatnet_nas.search.space import SearchSpace, load_space, space_from_dict
    from coatnet_nas.search.storage import DEFAULT_STORAGE, make_storage
    from coatnet_nas.search.strategies import Pruner, Sampler, make_pruner, make_sampler
    from coatnet_nas.search.study import SearchProgress, default_study_name, run_search
    from coatnet_nas.search.warmstart import yardstick_params
    from coatnet_nas.search.workers import run_worker

__all__ = [
    "DEFAULT_STORAGE",
    "Export",
    "Objective",
    "Pruner",
    "Sampler",
    "SearchConfig",
    "SearchProgress",
    "SearchSpace",
    "TrialStatus",
    "arch_key",
    "best_spec",
    "best_trial",
    "default_study_name",
    "export_study",
    "load_space",
    "make_pruner",
    "make_sampler",
    "make_storage",
    "open_study",
    "run_search",
    "run_worker",
    "space_from_dict",
    "trial_rows",
    "yardstick_params",
]

# Which submodule each public name lives in (the TYPE_CHECKING imports above, for loading).
_EXPORTS = {
    name: f"{__name__}.{module}"
    for module, names in (
        ("config", ("SearchConfig", "TrialStatus")),
        ("dedupe", ("arch_key",)),
        ("warmstart", ("yardstick_params",)),
        ("objective", ("Objective",)),
        ("report", ("Export", "best_spec", "best_trial", "export_study", "trial_rows")),
        ("space", ("SearchSpace", "load_space", "space_from_dict")),
        ("storage", ("DEFAULT_STORAGE", "make_storage")),
        ("strategies", ("Pruner", "Sampler", "make_pruner", "make_sampler")),
        ("opening", ("open_study",)),
        ("study", ("SearchProgress", "default_study_name", "run_search")),
        ("workers", ("run_worker",)),
    )
    for name in names
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
