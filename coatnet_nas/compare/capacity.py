"""Capacity as the paper means it: the lowest clean training loss a layout reaches at a plateau.

Fitting speed (the clean train loss after a fixed small budget, ``fit_loss``) says how fast a
layout starts to fit; capacity is how low it can drive the loss on a fixed training set given
time. :func:`train_to_plateau` trains at a constant learning rate (after warm-up; a decaying
schedule would make any run "plateau" as its rate vanishes), without augmentation, label
smoothing or stochastic depth, measures the clean loss (eval mode) on the training set every
``eval_every`` steps, and stops when :func:`plateaued` says the last ``patience`` measurements
did not improve the best one before them by ``min_delta`` (relative), or at ``max_steps``.
``capacity_loss`` is the lowest clean loss measured.

Every T stage should see at least 4x4 tokens (:func:`min_size_for_tokens`): at 32 px a C-T-T-T
network's last stage attends over one token, which measures nothing about attention.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from coatnet_nas.errors import CoatnetError

__all__ = ["CapacityResult", "Plateau", "min_size_for_tokens", "plateaued", "train_to_plateau"]


@dataclass(frozen=True)
class Plateau:
    """When a run has stopped improving: ``patience`` evaluations within ``min_delta``."""

    patience: int = 3
    min_delta: float = 0.02
    eval_every: int = 50
    max_steps: int = 2000

    def __post_init__(self) -> None:
        if self.patience < 1 or self.eval_every < 1 or self.max_steps < self.eval_every:
            raise CoatnetError(
                f"plateau: need patience >= 1, eval_every >= 1 and max_steps >= eval_every, got "
                f"{self.patience}, {self.eval_every}, {self.max_steps}.",
                param="plateau",
            )
        if not 0 <= self.min_delta < 1:
            raise CoatnetError(
                f"plateau: min_delta must be in [0, 1), got {self.min_delta}.", param="plateau"
            )


def plateaued(losses: Sequence[float], patience: int, min_delta: float) -> bool:
    """Whether the last ``patience`` losses failed to beat ``(1 - min_delta) x`` the best before.

    Needs more than ``patience`` measurements; a non-finite loss (diverged) counts as a plateau.
    """
    if losses and not math.isfinite(losses[-1]):
        return True
    if len(losses) <= patience:
        return False
    best_before = min(losses[:-patience])
    return min(losses[-patience:]) > best_before * (1 - min_delta)


def min_size_for_tokens(spec: Any, tokens: int = 4) -> int:
    """The smallest square input at which every T stage of ``spec`` sees ``tokens`` x ``tokens``.

    Stage ``i`` (after the stride-2 stem) runs at ``input / 2**(i + 2)``; without T stages the
    spec's total stride times ``tokens`` is returned (the last stage then sees that many).
    """
    strides = [2 ** (i + 2) for i, s in enumerate(spec.stages) if s.type == "T"]
    return tokens * max(strides or [spec.total_stride])


@dataclass
class CapacityResult:
    capacity_loss: float
    steps: int
    plateaued: bool
    curve: list[tuple[int, float]] = field(default_factory=list)


def train_to_plateau(
    model: Any,
    data: Any,
    plateau: Plateau,
    *,
    lr: float = 2e-3,
    batch_size: int = 128,
    eval_images: int = 2048,
    seed: int = 0,
    device: str = "cpu",
) -> CapacityResult:
    """Train ``model`` in place on ``data``'s training split until :func:`plateaued`."""
    from coatnet_nas.compare.job import clean_metrics
    from coatnet_nas.train import Runtime, train_model
    from coatnet_nas.train.recipe import TrainRecipe

    recipe = TrainRecipe(
        epochs=None,
        steps=plateau.max_steps,
        batch_size=batch_size,
        lr=lr,
        final_lr_scale=1.0,
        label_smoothing=0.0,
        augment=False,
        drop_path_rate=0.0,
        eval_every=plateau.eval_every,
        precise_bn=0,
    )
    curve: list[tuple[int, float]] = []

    def measure(report: Any) -> bool:
        loss, _ = clean_metrics(model, data, eval_images)
        curve.append((report.step, loss))
        return plateaued([c[1] for c in curve], plateau.patience, plateau.min_delta)

    result = train_model(model, data, recipe, measure, runtime=Runtime(device=device), seed=seed)
    finite = [loss for _, loss in curve if math.isfinite(loss)]
    return CapacityResult(
        capacity_loss=min(finite) if finite else float("nan"),
        steps=result.steps,
        plateaued=result.status == "stopped" or (bool(curve) and result.steps < plateau.max_steps),
        curve=curve,
    )
