"""What the loop's helpers (evaluation, run state) may read and set on a run, as a protocol.

The loop (:mod:`coatnet_nas.train.loop`) owns the run; :mod:`~coatnet_nas.train.measure` and
:mod:`~coatnet_nas.train.state` work on its parts. Naming those parts here keeps the helpers
typed without importing the loop, so the modules do not import each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import torch
    from torch import nn

    from coatnet_nas.data.tensors import ProxyData
    from coatnet_nas.train.distributed import World
    from coatnet_nas.train.ema import ModelEma
    from coatnet_nas.train.meters import _Budget, _MetricWindow, _StepClock
    from coatnet_nas.train.recipe import TrainRecipe
    from coatnet_nas.train.result import EvalReport
    from coatnet_nas.train.sampler import EpochSampler


class RunParts(Protocol):
    """The state of one training run that evaluation and checkpoints need."""

    recipe: TrainRecipe
    seed: int
    world: World
    device: torch.device
    data: ProxyData
    batch_size: int
    model: nn.Module
    forward: nn.Module
    ema: ModelEma | None
    amp_dtype: torch.dtype | None
    channels_last: bool
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    sampler: EpochSampler
    budget: _Budget
    window: _MetricWindow
    clock: _StepClock
    step: int
    images_seen: int
    lr: float
    eval_estimate: float | None
    history: list[EvalReport]
