"""Training: one recipe, the loop, evaluation with precise BN, checkpoints.

``recipe`` (:class:`TrainRecipe`: what to train; :class:`Runtime`: where), ``schedule``
(learning rate, optimizer, precision), ``loop`` (the budgeted loop), ``evaluate`` (accuracy and
precise BN), ``adapt`` (a spec fitted to its data), ``fit`` (the entry points), ``checkpoint``
and ``state`` (checkpoints that resume a run exactly), ``distributed`` (data-parallel
training under torchrun), ``ema``, ``weights`` (:func:`load_weights`: initialize from a
checkpoint at another resolution) and ``result`` (what a run reports, :class:`RunStatus`).
Names load on first use.
"""

from coatnet_nas._lazy import lazy_exports

_EXPORTS = {
    "resolve_device": "coatnet_nas.data.devices",
    "build_for_data": "coatnet_nas.train.adapt",
    "spec_for_data": "coatnet_nas.train.adapt",
    "Checkpoint": "coatnet_nas.train.checkpoint",
    "load_checkpoint": "coatnet_nas.train.checkpoint",
    "save_checkpoint": "coatnet_nas.train.checkpoint",
    "World": "coatnet_nas.train.distributed",
    "distributed_session": "coatnet_nas.train.distributed",
    "launch_local": "coatnet_nas.train.distributed",
    "ModelEma": "coatnet_nas.train.ema",
    "Checkpoints": "coatnet_nas.train.state",
    "load_weights": "coatnet_nas.train.weights",
    "evaluate": "coatnet_nas.train.evaluate",
    "recalibrate_batchnorm": "coatnet_nas.train.evaluate",
    "train_model": "coatnet_nas.train.fit",
    "train_spec": "coatnet_nas.train.fit",
    "AmpMode": "coatnet_nas.train.recipe",
    "Runtime": "coatnet_nas.train.recipe",
    "TrainConfig": "coatnet_nas.train.recipe",
    "TrainRecipe": "coatnet_nas.train.recipe",
    "recipe_from": "coatnet_nas.train.recipe",
    "EvalReport": "coatnet_nas.train.result",
    "ProgressInfo": "coatnet_nas.train.result",
    "RunStatus": "coatnet_nas.train.result",
    "TrainResult": "coatnet_nas.train.result",
    "lr_at": "coatnet_nas.train.schedule",
    "make_optimizer": "coatnet_nas.train.schedule",
    "param_groups": "coatnet_nas.train.schedule",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
