"""Training: one recipe (:class:`TrainRecipe`), the loop, evaluation with precise BN, checkpoints."""

from coatnet_nas.train._legacy import *  # noqa: F403  (interim: being split into modules)
from coatnet_nas.train._legacy import json_safe, lr_at, param_groups, spec_problem  # noqa: F401
from coatnet_nas.train.recipe import AmpMode, Runtime, TrainRecipe, recipe_from  # noqa: F401
