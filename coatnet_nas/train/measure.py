"""A run's evaluation: precise BN, then accuracy of the raw weights and of their EMA.

Under several processes each rank scores a disjoint slice of the validation split and the
correct counts are summed, so the reported accuracy is that of the whole split. Evaluation goes
through the bare model, never the ``DistributedDataParallel`` wrapper: its forward would
broadcast buffers, a collective that ranks with unequal slices would not match. Precise BN runs
the same seeded batches on every rank and rank 0's statistics are then broadcast, so all ranks
evaluate the same model.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from torch import nn

from coatnet_nas.data.tensors import ProxyData, Split
from coatnet_nas.train.evaluate import evaluate, recalibrate_batchnorm

if TYPE_CHECKING:
    from coatnet_nas.train.parts import RunParts

__all__ = ["evaluate_run", "val_shard"]


def val_shard(data: ProxyData, rank: int, world: int) -> ProxyData:
    """Rank ``rank``'s contiguous slice of the validation split (the data itself when alone)."""
    if world == 1:
        return data
    n = len(data.val)
    lo, hi = rank * n // world, (rank + 1) * n // world
    return replace(data, val=Split(data.val.images[lo:hi], data.val.labels[lo:hi]))


def _score(run: RunParts, model: nn.Module, forward: nn.Module, recalibrate: bool) -> float:
    if run.recipe.precise_bn and recalibrate:
        recalibrate_batchnorm(
            model,
            run.data,
            run.recipe.precise_bn,
            run.batch_size // run.world.size,
            amp_dtype=run.amp_dtype,
            channels_last=run.channels_last,
            seed=run.seed,
        )
        run.world.broadcast_buffers(model)
    shard = val_shard(run.data, run.world.rank, run.world.size)
    accuracy = evaluate(
        forward,
        shard,
        run.recipe.eval_batch_size,
        amp_dtype=run.amp_dtype,
        channels_last=run.channels_last,
    )
    if run.world.size == 1:
        return accuracy
    correct, total = run.world.sum_ints(
        round(accuracy * len(shard.val)), len(shard.val), device=run.device
    )
    return correct / max(1, total)


def evaluate_run(run: RunParts, recalibrate: bool) -> tuple[float, float | None]:
    """Validation accuracy of the weights, and of their EMA when the recipe keeps one."""
    accuracy = _score(run, run.model, run.forward, recalibrate)
    if run.ema is None:
        return accuracy, None
    ema = run.ema.module
    was_training = ema.training
    try:
        return accuracy, _score(run, ema, ema, recalibrate)
    finally:
        ema.train(was_training)
