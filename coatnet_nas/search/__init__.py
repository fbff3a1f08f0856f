"""Architecture search: spaces (what to sample), objectives (how to score), studies (Optuna
storage, samplers, pruners, workers) and reports (exports), in the spirit of Optuna's split."""

from coatnet_nas.search.objective import Objective, SearchConfig
from coatnet_nas.search.report import Export, best_spec, best_trial, export_study, trial_rows
from coatnet_nas.search.space import SearchSpace, load_space, space_from_dict
from coatnet_nas.search.study import (
    DEFAULT_STORAGE,
    SearchProgress,
    default_study_name,
    make_storage,
    open_study,
    run_search,
    run_worker,
)

__all__ = [
    "DEFAULT_STORAGE",
    "Export",
    "Objective",
    "SearchConfig",
    "SearchProgress",
    "SearchSpace",
    "best_spec",
    "best_trial",
    "default_study_name",
    "export_study",
    "load_space",
    "make_storage",
    "open_study",
    "run_search",
    "run_worker",
    "space_from_dict",
    "trial_rows",
]
