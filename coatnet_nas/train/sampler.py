"""Training batches with DistributedSampler semantics on device-resident data, resumable.

Every rank draws the same permutation of each epoch from the same seeded generator, gathers the
same *global* batch of indices and augments it with the same random draws, then keeps only its
own contiguous slice: the ranks' shards are disjoint, they cover the global batch, and the union
of a step over all ranks is exactly the batch a single process with that global batch size
would see. That is what makes an N-process run match a 1-process run. With one process the
sequence of generator calls is that of :meth:`ProxyData.train_batches`, so nothing changes.

The sampler's position (the epoch's permutation, the batch within it, the generator state) is a
small state dict, so a checkpoint can resume mid-epoch on exactly the next batch.
"""

from __future__ import annotations

from typing import Any

import torch

from coatnet_nas.data.tensors import ProxyData

__all__ = ["EpochSampler"]


class EpochSampler:
    """``next_batch()``: this rank's share of the next global batch, or None at an epoch's end."""

    def __init__(
        self, data: ProxyData, global_batch: int, rank: int, world: int, seed: int, augment: bool
    ):
        self.data, self.global_batch, self.augment = data, global_batch, augment
        self.lo, self.hi = rank * (global_batch // world), (rank + 1) * (global_batch // world)
        self.sharded = world > 1
        self.generator = torch.Generator(device=data.device)
        self.generator.manual_seed(seed)
        self.steps_per_epoch = data.steps_per_epoch(global_batch)
        self.order: torch.Tensor | None = None
        self.position = 0

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.order is None:
            n = len(self.data.train)
            self.order = torch.randperm(n, device=self.data.device, generator=self.generator)
            self.position = 0
        if self.position >= self.steps_per_epoch:
            self.order = None
            return None
        size = self.global_batch
        idx = self.order[self.position * size : (self.position + 1) * size]
        self.position += 1
        images = self.data.train.images[idx]
        if self.augment:  # the whole global batch: every rank consumes the same random draws
            images = self.data.augment(images, self.generator)
        labels = self.data.train.labels[idx]
        if self.sharded:
            images, labels = images[self.lo : self.hi], labels[self.lo : self.hi]
        return self.data.normalize(images), labels

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "order": self.order.cpu() if self.order is not None else None,
            "position": self.position,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        order = state["order"]
        self.order = order.to(self.data.device) if order is not None else None
        self.position = int(state["position"])
