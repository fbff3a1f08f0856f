"""Training: one recipe (:class:`TrainRecipe`), the loop, evaluation, checkpoints."""

from coatnet_nas.train._legacy import *  # noqa: F403  (interim: being split into modules)
from coatnet_nas.train._legacy import (  # noqa: F401
    json_safe,
    lr_at,
    param_groups,
    spec_for_data,
    spec_problem,
)
from coatnet_nas.train.recipe import AmpMode, Runtime, TrainConfig, TrainRecipe, recipe_from  # noqa: F401
