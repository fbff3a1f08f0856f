"""Evaluation: top-1 accuracy, and BatchNorm statistics recomputed before it ("precise BN")."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from coatnet_nas.data.tensors import ProxyData
from coatnet_nas.train.schedule import autocast

__all__ = ["evaluate", "recalibrate_batchnorm"]


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    data: ProxyData,
    batch_size: int = 512,
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> float:
    """Top-1 accuracy on ``data.val`` (0..1); restores the model's train/eval mode."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=data.device)
    try:
        for images, labels in data.val_batches(batch_size):
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast(data.device, amp_dtype):
                logits = model(images)
            correct += (logits.argmax(dim=1) == labels).sum()
    finally:
        model.train(was_training)
    return correct.item() / max(1, len(data.val))


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module,
    data: ProxyData,
    batches: int,
    batch_size: int,
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    seed: int = 0,
) -> int:
    """Recompute every BatchNorm's statistics over training batches ("precise BN").

    The weights are fixed and the rest of the model is in eval mode (no stochastic depth), so
    the statistics are those evaluation will see. fvcore's ``update_bn_stats`` does the
    population averaging; the batches are unaugmented, like evaluation images, and drawn with
    their own generator so the training order is unchanged. Returns the batches used (0 when
    the model has no BatchNorm or ``batches`` is 0); restores the model's mode.
    """
    from fvcore.nn.precise_bn import BN_MODULE_TYPES, update_bn_stats

    norms = [m for m in model.modules() if isinstance(m, BN_MODULE_TYPES)]
    batch_size = min(batch_size, len(data.train))
    batches = min(batches, data.steps_per_epoch(batch_size))
    if not norms or batches < 1:
        return 0
    was_training = model.training
    generator = torch.Generator(device=data.device)
    generator.manual_seed(seed)

    def images() -> Iterator[torch.Tensor]:
        for batch, _ in data.train_batches(batch_size, generator=generator, augment=False):
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            yield batch

    model.eval()
    for norm in norms:
        norm.train()
    try:
        with autocast(data.device, amp_dtype):
            update_bn_stats(model, images(), num_iters=batches)
    finally:
        model.train(was_training)
    return batches
