"""One step of the sandwich rule: which sub-networks it trains, and their passes on one batch.

A step draws a layout and trains the largest sub-network of that layout on the labels, then its
smallest and ``children`` random sub-networks (of any layout) on the largest's predicted
distribution (in-place distillation). The draw is a function of (seed, step) only, so a resumed
run and every rank of a data-parallel one train the same sub-networks.
"""

from __future__ import annotations

import random
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from coatnet_nas.supernet.model import Supernet
from coatnet_nas.supernet.space import ElasticSpace

__all__ = ["SandwichRule", "sandwich_step", "step_specs"]


class SandwichRule(BaseModel):
    """Which sub-networks each step trains, and whether they learn from the largest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    children: int = Field(2, ge=0, le=16, description="random sub-networks per step")
    smallest: bool = True
    distill: bool = True  # in-place distillation from the largest (else: the labels)


def step_specs(space: ElasticSpace, rule: SandwichRule, seed: int, step: int) -> list[Any]:
    """The sub-networks step ``step`` trains, largest first: the same on every rank and run."""
    rng = random.Random(seed * 1_000_003 + step)
    layout = rng.choice(space.layouts)
    specs = [space.extreme(layout, largest=True)]
    if rule.smallest:
        specs.append(space.extreme(layout, largest=False))
    return specs + [space.sample(rng) for _ in range(rule.children)]


def sandwich_step(
    net: Supernet,
    images: torch.Tensor,
    labels: torch.Tensor,
    specs: list[Any],
    rule: SandwichRule,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward and backward passes of one step's ``specs`` (largest first) on one batch.

    The gradients accumulate in ``net``; returns the largest's loss and accuracy (0-dim).
    The others learn from the largest's predicted distribution when ``rule.distill``.
    """
    teacher = None
    for k, spec in enumerate(specs):
        logits = net(images, spec)
        if teacher is None or not rule.distill:
            loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
        else:
            loss = -(teacher * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
        loss.backward()
        if k == 0:
            teacher = logits.detach().softmax(dim=1)
            top = (logits.argmax(dim=1) == labels).float().mean()
            first = loss.detach()
    return first, top
