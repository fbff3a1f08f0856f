"""What a training run reports: evaluations, progress snapshots and the final result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from coatnet_nas._io import json_safe

__all__ = ["EvalReport", "ProgressInfo", "RunStatus", "TrainResult"]


class RunStatus(str, Enum):
    """How a run ended: ``ok`` (planned epochs/steps done), ``budget`` (the seconds budget ended
    it), ``stopped`` (the callback asked to stop), ``diverged`` (non-finite training loss)."""

    OK = "ok"
    DIVERGED = "diverged"
    BUDGET = "budget"
    STOPPED = "stopped"


@dataclass
class EvalReport:
    """One evaluation, handed to the callback (which may stop the run or raise to prune)."""

    step: int
    epoch: float
    images_seen: int
    val_accuracy: float
    train_loss: float
    seconds: float
    train_accuracy: float = 0.0
    lr: float = 0.0
    ema_val_accuracy: float | None = None  # of the weights' moving average, when kept


@dataclass
class ProgressInfo:
    """A throttled snapshot for progress bars (the library itself never prints)."""

    step: int
    total_steps: int | None
    fraction: float  # of the budget consumed, 0..1
    epoch: float
    seconds: float
    train_loss: float
    train_accuracy: float
    images_per_second: float
    val_accuracy: float | None
    lr: float | None = None  # the learning rate of the step just taken


@dataclass
class TrainResult:
    """The outcome of one run; ``to_dict()`` is its JSON form.

    On ``diverged`` the accuracies are those of the last evaluation before (0 if none).
    """

    status: RunStatus
    val_accuracy: float
    best_val_accuracy: float
    train_loss: float
    train_accuracy: float
    epochs: float
    steps: int
    seconds: float
    images_per_second: float
    params: int
    flops: int | None
    history: list[EvalReport] = field(default_factory=list)
    reason: str | None = None
    images_seen: int = 0
    device: str = "cpu"
    ema_val_accuracy: float | None = None  # the last evaluation of the EMA weights, when kept
    world_size: int = 1  # processes that trained it (images_seen counts all of them)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (non-finite floats become None: JSON has no NaN)."""
        data = asdict(self)
        data["status"] = RunStatus(self.status).value
        return json_safe(data)
