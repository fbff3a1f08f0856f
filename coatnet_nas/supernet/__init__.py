"""A weight-sharing supernet over a search space (NASViT/BigNAS-style), at the proxy's size.

``space`` (:class:`ElasticSpace`: the choices, sampling, coverage), ``fit`` (block sizes, what a
spec asks, why it does not fit), ``blocks`` (elastic MBConv/Transformer/stem/head), ``model``
(:class:`Supernet`), ``extraction`` (a sub-network as a normal model), ``checkpoint`` (the file
format), ``sandwich`` (one step: the sandwich rule + in-place distillation), ``train``
(resumable, data-parallel under ``torch.distributed``), ``parallel`` (the batch split and the
gradient average over ranks) and ``score`` (a candidate's accuracy with inherited weights,
BatchNorm recalibrated). Names load on first use.
"""

from coatnet_nas._lazy import lazy_exports

_EXPORTS = {
    "ElasticSpace": "coatnet_nas.supernet.space",
    "elastic_space": "coatnet_nas.supernet.space",
    "Supernet": "coatnet_nas.supernet.model",
    "extract": "coatnet_nas.supernet.extraction",
    "save_subnet": "coatnet_nas.supernet.extraction",
    "subnet": "coatnet_nas.supernet.extraction",
    "SupernetFile": "coatnet_nas.supernet.checkpoint",
    "load_supernet": "coatnet_nas.supernet.checkpoint",
    "save_supernet": "coatnet_nas.supernet.checkpoint",
    "SandwichRule": "coatnet_nas.supernet.sandwich",
    "train_supernet": "coatnet_nas.supernet.train",
    "SupernetScorer": "coatnet_nas.supernet.score",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
