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

__all__ = [
    "CapacityOptions",
    "CapacityResult",
    "Plateau",
    "min_size_for_tokens",
    "plateaued",
    "train_to_plateau",
]


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


@dataclass(frozen=True)
class CapacityOptions:
    """How ``coatnet compare`` measures capacity (``enabled`` False: fitting speed only).

    Each (layout, seed) trains on one fixed set of ``images`` training images drawn (with the
    data seed) from the largest regime, at the smallest square size where every T stage of every
    layout sees ``tokens`` x ``tokens`` (never below the comparison's own size), with the layouts
    re-fitted there to the comparison's budget scaled by the pixel count. It stops at a plateau
    (``patience`` evaluations every ``eval_every`` steps that improve the best clean loss before
    them by less than ``min_delta``, relative) or after ``steps`` steps.
    """

    enabled: bool = True
    images: int = 2048
    steps: int = 1000
    patience: int = 3
    min_delta: float = 0.02
    eval_every: int = 50
    lr: float = 2e-3
    batch_size: int = 64
    tokens: int = 4

    def __post_init__(self) -> None:
        ints = {
            "images": (self.images, 2),
            "steps": (self.steps, 1),
            "patience": (self.patience, 1),
            "eval_every": (self.eval_every, 1),
            "batch_size": (self.batch_size, 1),
            "tokens": (self.tokens, 1),
        }
        for name, (value, low) in ints.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise CoatnetError(
                    f"capacity.{name} must be a whole number >= {low}, got {value!r}.",
                    param=f"capacity.{name}",
                )
        if self.steps < self.eval_every:
            raise CoatnetError(
                f"capacity.steps must be >= the evaluation interval `capacity.eval_every` "
                f"= {self.eval_every}, got {self.steps}: the plateau is judged on evaluations.",
                param="capacity.steps",
            )
        if not 0 <= self.min_delta < 1:
            raise CoatnetError(
                f"capacity.min_delta must be in [0, 1) (a relative improvement), got "
                f"{self.min_delta!r}.",
                param="capacity.min_delta",
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise CoatnetError(
                f"capacity.lr must be positive, got {self.lr!r}.", param="capacity.lr"
            )

    @property
    def plateau(self) -> Plateau:
        return Plateau(self.patience, self.min_delta, self.eval_every, self.steps)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


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
    seed: int = 0,
    runtime: Any = None,
    progress: Any = None,
) -> CapacityResult:
    """Train ``model`` in place on ``data``'s training split until :func:`plateaued`.

    The clean loss is measured on the whole training split (keep it small: it is the fixed set).
    ``runtime`` is a :class:`~coatnet_nas.train.Runtime` (default: CPU); ``progress`` receives
    the trainer's throttled :class:`~coatnet_nas.train.ProgressInfo`.
    """
    from coatnet_nas.compare.clean import clean_metrics
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
        loss, _ = clean_metrics(model, data, len(data.train))
        curve.append((report.step, loss))
        return plateaued([c[1] for c in curve], plateau.patience, plateau.min_delta)

    runtime = runtime if runtime is not None else Runtime(device="cpu")
    result = train_model(
        model, data, recipe, measure, runtime=runtime, seed=seed, progress=progress
    )
    finite = [loss for _, loss in curve if math.isfinite(loss)]
    return CapacityResult(
        capacity_loss=min(finite) if finite else float("nan"),
        steps=result.steps,
        plateaued=plateaued([c[1] for c in curve], plateau.patience, plateau.min_delta),
        curve=curve,
    )
