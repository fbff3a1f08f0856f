"""What a training run is (:class:`TrainRecipe`) and where it runs (:class:`Runtime`).

The recipe is the one declaration of training settings in the package: proxy recipes (search,
proxy-check) and comparison recipes embed it, and the command line builds it from only the
options a user set, so its defaults live here and nowhere else. The runtime says how the same
recipe is executed on a machine (device, precision, memory layout, threads); it changes speed,
not what is learned (up to floating-point noise).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from coatnet_nas.errors import CoatnetError, as_choice
from coatnet_nas.spec import settings_problems

__all__ = ["AmpMode", "Runtime", "TrainConfig", "TrainRecipe", "recipe_from"]


class AmpMode(str, Enum):
    """Mixed precision: ``auto`` is bf16 on CUDA where supported (else fp16), off on CPU."""

    AUTO = "auto"
    BF16 = "bf16"
    FP16 = "fp16"
    OFF = "off"


class TrainRecipe(BaseModel):
    """Budget, optimizer, schedule, augmentation and evaluation of one training run.

    The run ends at the first of ``epochs`` (may be fractional), ``steps`` and ``seconds`` (wall
    time of the whole call, evaluations included: a step is not started when it and the final
    evaluation would overrun). ``warmup`` is a fraction of the planned schedule (AdamW, linear
    warm-up, cosine decay to ``lr * final_lr_scale``). ``drop_path_rate`` overrides the spec's
    stochastic depth (None: keep the spec's). ``precise_bn`` is the number of training batches
    over which BatchNorm statistics are recomputed before each evaluation (0: use the running
    averages, which after a short run still mix in the early weights and can scramble a proxy's
    ranking). ``eval_every`` evaluates every N steps (None: once per epoch). ``ema`` keeps an
    exponential moving average of the weights with that decay (e.g. 0.9999) and evaluates it
    beside the raw weights (None: no average). ``batch_size`` is the global batch: a run on N
    processes gives each ``batch_size / N`` images per step, so the same recipe learns the same
    thing on any number of devices.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: float | None = Field(3, gt=0)
    steps: int | None = Field(None, ge=1)
    seconds: float | None = Field(None, gt=0)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    warmup: float = Field(0.05, ge=0, lt=1)
    final_lr_scale: float = Field(0.01, ge=0, le=1)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    grad_clip: float | None = Field(1.0, gt=0)
    drop_path_rate: float | None = Field(None, ge=0, lt=1)
    augment: bool = True
    precise_bn: int = Field(8, ge=0)
    eval_every: int | None = Field(None, ge=1)
    eval_batch_size: int = Field(512, ge=1)
    ema: float | None = Field(None, gt=0, lt=1)

    @field_validator("lr", "seconds", "epochs")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _some_budget(self) -> TrainRecipe:
        if self.epochs is None and self.steps is None and self.seconds is None:
            raise ValueError("set at least one budget: epochs, steps or seconds")
        return self

    def evolve(self, **changes: Any) -> TrainRecipe:
        """A validated copy with ``changes`` applied (raises :class:`CoatnetError`)."""
        return recipe_from({**self.model_dump(), **changes}, what="training recipe")


def recipe_from(values: dict[str, Any], what: str = "training recipe") -> TrainRecipe:
    """Validate recipe fields, turning pydantic's report into one user-facing sentence."""
    try:
        return TrainRecipe.model_validate(values)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]["loc"]
        raise CoatnetError(
            f"invalid {what}: {settings_problems(exc)}.",
            param=str(first[0]) if first else None,
        ) from None


@dataclass(frozen=True)
class Runtime:
    """Where and how a recipe runs.

    ``channels_last`` (default on) lays out the model and batches NHWC: on CPU it measured
    1.1-2x faster for proxy models, on CUDA it is the layout tensor-core convolutions favour.
    ``threads`` caps CPU threads for the run (None: torch's default); several trainings sharing a
    CPU need it, since oversubscribed threads slow small-op workloads down many times over.
    ``sync_batchnorm`` (several CUDA processes only) computes BatchNorm statistics over the
    global batch instead of each rank's slice, for per-device batches too small for stable
    statistics.
    """

    device: str = "auto"
    amp: AmpMode = AmpMode.AUTO
    channels_last: bool = True
    compile: bool = False
    threads: int | None = None
    sync_batchnorm: bool = False

    def __post_init__(self) -> None:
        from coatnet_nas.data.devices import check_device_name

        check_device_name(self.device)
        object.__setattr__(self, "amp", as_choice(AmpMode, self.amp, "amp"))
        if self.threads is not None and self.threads < 1:
            raise CoatnetError(
                f"threads must be >= 1 or None, got {self.threads}.", param="threads"
            )
        if self.channels_last is None:
            object.__setattr__(self, "channels_last", True)


_RUNTIME_FIELDS = ("device", "amp", "channels_last", "compile", "threads")


@dataclass
class TrainConfig:
    """Deprecated flat form of ``TrainRecipe`` + ``Runtime`` + seed (kept for old callers).

    ``train_model``/``train_spec`` still accept it; new code passes a :class:`TrainRecipe` and,
    where needed, ``runtime=`` and ``seed=``.
    """

    epochs: float | None = 3
    steps: int | None = None
    seconds: float | None = None
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: float = 0.05
    final_lr_scale: float = 0.01
    label_smoothing: float = 0.1
    grad_clip: float | None = 1.0
    drop_path_rate: float | None = None
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool | None = True
    compile: bool = False
    seed: int = 0
    eval_every: int | None = None
    eval_batch_size: int = 512
    augment: bool = True
    threads: int | None = None
    precise_bn: int = 8

    def __post_init__(self) -> None:
        warnings.warn(
            "TrainConfig is deprecated: pass a TrainRecipe (and runtime=Runtime(...), seed=...)",
            DeprecationWarning,
            stacklevel=3,
        )

    def split(self) -> tuple[TrainRecipe, Runtime, int]:
        """The recipe, runtime and seed this flat config means (validated)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        runtime = Runtime(**{k: values.pop(k) for k in _RUNTIME_FIELDS})
        seed = values.pop("seed")
        return recipe_from(values, what="training config"), runtime, seed

    def validate(self) -> None:
        """Raise :class:`CoatnetError` naming the first bad setting."""
        self.split()
