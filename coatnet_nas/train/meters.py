"""What a run measures while it goes: budget position, a metric window, the step clock.

Kept apart from the loop so that the loop reads as the sequence of a step; the window knows how
to reduce itself across ranks, so a distributed run reports global (not rank-0) metrics.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from coatnet_nas.train.distributed import World
from coatnet_nas.train.recipe import TrainRecipe
from coatnet_nas.train.result import EvalReport

__all__ = ["_Budget", "_MetricWindow", "_StepClock"]


class _Budget:
    """Planned steps and the wall-time budget: where the schedule is and whether to go on."""

    def __init__(self, recipe: TrainRecipe, steps_per_epoch: int, start: float):
        self.seconds, self.start = recipe.seconds, start
        planned = []
        if recipe.epochs is not None:
            planned.append(max(1, math.ceil(recipe.epochs * steps_per_epoch)))
        if recipe.steps is not None:
            planned.append(recipe.steps)
        self.total_steps = min(planned) if planned else None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def done(self, step: int) -> bool:
        return self.total_steps is not None and step >= self.total_steps

    def schedule_position(self, step: int) -> float:
        """By steps when a step budget exists (reproducible), else by time."""
        if self.total_steps:
            return (step + 1) / self.total_steps
        return self.elapsed() / self.seconds  # type: ignore[operator]

    def fraction(self, step: int) -> float:
        parts = [step / self.total_steps] if self.total_steps else []
        if self.seconds:
            parts.append(self.elapsed() / self.seconds)
        return min(1.0, max(parts, default=0.0))

    def would_overrun(self, next_step: float, final_eval: float) -> bool:
        return self.seconds is not None and self.elapsed() + next_step + final_eval > self.seconds


class _MetricWindow:
    """Training loss/accuracy since the last evaluation, summed on the device (no syncs)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.loss = torch.zeros((), device=self.device)
        self.correct = torch.zeros((), dtype=torch.long, device=self.device)
        self.images = 0
        self.steps = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.loss += loss
        self.correct += (logits.argmax(dim=1) == labels).sum()
        self.images += len(labels)
        self.steps += 1

    def means(self, fallback: EvalReport | None, world: World | None = None) -> tuple[float, float]:
        """Mean loss and accuracy (or the last evaluation's, when nothing ran since).

        With a ``world`` of several ranks the sums are all-reduced first (every rank must call).
        """
        loss, correct, images, steps = self.loss, self.correct, self.images, self.steps
        if world is not None and world.size > 1:
            loss, correct, images, steps = world.sum_window(loss, correct, images, steps)
        if steps == 0:
            return (fallback.train_loss, fallback.train_accuracy) if fallback else (math.nan, 0.0)
        return float(loss) / steps, int(correct) / max(1, images)

    def state_dict(self) -> dict[str, Any]:
        return {
            "loss": self.loss.detach().cpu(),
            "correct": self.correct.detach().cpu(),
            "images": self.images,
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loss = state["loss"].to(self.device)
        self.correct = state["correct"].to(self.device)
        self.images, self.steps = int(state["images"]), int(state["steps"])


class _StepClock:
    """Time per training step, from the end of the previous step (or evaluation), so that it
    includes drawing and augmenting the batch: throughput and budget checks see the real cost."""

    def __init__(self) -> None:
        self.train_seconds = self.estimate = 0.0
        self.restart()

    def restart(self) -> None:
        """Start timing afresh (after an evaluation or a callback, which are not a step's)."""
        self._tick = time.perf_counter()

    def lap(self, first: bool) -> None:
        now = time.perf_counter()
        duration, self._tick = now - self._tick, now
        self.train_seconds += duration
        self.estimate = duration if first else 0.7 * self.estimate + 0.3 * duration

    def rate(self, images: int) -> float:
        return images / max(self.train_seconds, 1e-9)
