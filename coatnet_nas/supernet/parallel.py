"""Data-parallel supernet training: the batch split, the gradient average, the replicas' digest.

Every rank builds the same supernet from the same seed, draws the same sub-networks at each step
(a function of seed and step) and takes its own slice of the same global batch; after the
sandwich's backward passes each rank holds the gradient of its slice. :func:`average_gradients`
replaces them by their mean over the ranks in one flattened all-reduce, so the optimizer step
(and the gradient clipping before it) is the same on every rank and the replicas stay identical.

Why not ``DistributedDataParallel``: a sandwich step runs several sub-networks, each touching a
different subset of the parameters, and accumulates their gradients over several backward
passes. DDP reduces in its backward hooks, once per backward, and must be told which parameters
each pass leaves unused (``find_unused_parameters`` walks the graph every pass); skipping the
reduction on all passes but the last (``no_sync``) then leaves the last pass deciding which
parameters count as used. One all-reduce of the accumulated gradients after the last pass is
both simpler and exact, and costs one collective per step instead of one per pass.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from coatnet_nas.errors import CoatnetError
from coatnet_nas.train.distributed import World

__all__ = ["average_gradients", "split_batch", "weights_digest"]


def split_batch(batch: int, ranks: int) -> int:
    """Each rank's share of the global ``batch`` over ``ranks`` processes (refuses what cannot
    be split evenly, so every rank's slice, and the mean of their gradients, is the batch's)."""
    if ranks < 1:
        raise CoatnetError(f"nproc must be >= 1, got {ranks}.", param="nproc")
    if ranks > batch:
        raise CoatnetError(
            f"nproc {ranks} is more processes than the {batch} images of a global batch; "
            f"use at most {batch} processes, or a larger batch (batch_size).",
            param="nproc",
        )
    if batch % ranks:
        raise CoatnetError(
            f"batch_size {batch} (the global batch) cannot be split evenly over {ranks} "
            f"processes; use a multiple of {ranks}.",
            param="batch_size",
        )
    return batch // ranks


def average_gradients(net: nn.Module, world: World) -> None:
    """Replace each parameter's gradient by its mean over the ranks (one all-reduce).

    A parameter that no rank used this step keeps ``grad`` None, so the optimizer skips it
    exactly as it does in one process (AdamW would otherwise decay it and move it by its
    momentum); one used on some ranks only gets the mean with zeros from the others. Which
    parameters were used travels in the same buffer, one flag each, so every rank reduces a
    list of the same length whatever it ran.
    """
    if world.size == 1:
        return
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        return
    first = params[0]
    parts = [p.grad.reshape(-1) if p.grad is not None else p.new_zeros(p.numel()) for p in params]
    used = torch.tensor(
        [float(p.grad is not None) for p in params], dtype=first.dtype, device=first.device
    )
    flat = world.mean_(torch.cat([*parts, used]))
    counts = flat[-len(params) :].tolist()
    offset = 0
    for p, count in zip(params, counts, strict=True):
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p) if count > 0 else None
        offset += n


def weights_digest(net: nn.Module) -> int:
    """48 bits of a SHA-256 of the parameters' bytes (not the buffers: each rank's BatchNorm
    statistics are its own slice's): equal on every rank exactly when the replicas agree."""
    sha = hashlib.sha256()
    for p in net.parameters():
        sha.update(p.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return int.from_bytes(sha.digest()[:6], "big")  # exact in a float64 collective
