"""Architecture search, split the way Optuna splits itself.

``space`` (what to sample), ``config`` (a study's stored settings, trial statuses), ``objective``
(how one trial is scored), ``strategies`` (samplers, pruners), ``storage`` (SQLAlchemy storages,
heartbeats), ``workers`` (processes pulling trials), ``study`` (create/resume, ``run_search``)
and ``report`` (exports).

Names load on first use: the command line reads :class:`Sampler` and :class:`Pruner` at start-up,
and importing Optuna and the model code for them would add seconds to every command.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coatnet_nas.search.config import SearchConfig, TrialStatus
    from coatnet_nas.search.objective import Objective
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
    from coatnet_nas.search.study import (
        SearchProgress,
        default_study_name,
        open_study,
        run_search,
    )
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
]

# Which submodule each public name lives in (the TYPE_CHECKING imports above, for loading).
_HOME = {
    name: module
    for module, names in (
        ("config", ("SearchConfig", "TrialStatus")),
        ("objective", ("Objective",)),
        ("report", ("Export", "best_spec", "best_trial", "export_study", "trial_rows")),
        ("space", ("SearchSpace", "load_space", "space_from_dict")),
        ("storage", ("DEFAULT_STORAGE", "make_storage")),
        ("strategies", ("Pruner", "Sampler", "make_pruner", "make_sampler")),
        ("study", ("SearchProgress", "default_study_name", "open_study", "run_search")),
        ("workers", ("run_worker",)),
    )
    for name in names
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
