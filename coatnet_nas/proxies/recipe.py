"""A proxy recipe: which data, how far to shrink the candidate, and a :class:`TrainRecipe`.

This is what scores a search candidate (``proxy:`` in a search space) and what a proxy check's
training proxies start from. Training settings are not redeclared here: they are the embedded
``train`` recipe, whose defaults are the trainer's except a one-epoch budget. For YAML files and
proxy strings (``train:epochs=1,lr=0.001``) the training keys may also be written flat, next to
the data keys; they are folded into ``train``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from coatnet_nas.errors import CoatnetError
from coatnet_nas.spec import settings_problems
from coatnet_nas.train.recipe import TrainRecipe

if TYPE_CHECKING:
    from coatnet_nas.data import ProxyData

__all__ = ["PROXY_TRAINING", "TRAINING_OPTIONS", "ProxyRecipe"]

PROXY_TRAINING = TrainRecipe(epochs=1)
_TRAIN_KEYS = tuple(TrainRecipe.model_fields)
_FIXED = ("dataset", "data_dir")  # one data set per check/search: set it on the space


class ProxyRecipe(BaseModel):
    """How a candidate is scored: a short training run of a shrunken copy on real data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    image_size: int = Field(32, ge=8)
    subset: float = Field(0.2, gt=0, le=1)
    val_fraction: float = Field(0.1, gt=0, lt=1)
    width_mult: float = Field(0.25, gt=0, le=4)
    depth_mult: float = Field(1.0, gt=0, le=4)
    evals_per_epoch: int = Field(2, ge=1, description="intermediate reports for the pruner")
    train: TrainRecipe = PROXY_TRAINING

    @model_validator(mode="before")
    @classmethod
    def _fold_training_keys(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        flat = {k: data[k] for k in _TRAIN_KEYS if k in data}
        if not flat:
            return data
        rest = {k: v for k, v in data.items() if k not in flat}
        base = rest.get("train", PROXY_TRAINING)
        base = base.model_dump() if isinstance(base, TrainRecipe) else dict(base or {})
        rest["train"] = {**PROXY_TRAINING.model_dump(), **base, **flat}
        return rest

    # Read-through for the training settings people look up most.
    @property
    def epochs(self) -> float | None:
        return self.train.epochs

    @property
    def steps(self) -> int | None:
        return self.train.steps

    @property
    def seconds(self) -> float | None:
        return self.train.seconds

    @property
    def batch_size(self) -> int:
        return self.train.batch_size

    @property
    def lr(self) -> float:
        return self.train.lr

    def evolve(self, what: str = "proxy recipe", **changes: Any) -> ProxyRecipe:
        """A validated copy; data, shrink and (flat) training keys may all be changed.

        Raises :class:`CoatnetError` starting with ``what`` and naming the setting
        (``param="proxy.<key>"``).
        """
        if not changes:
            return self
        values = self.model_dump()
        values["train"] = {
            **values["train"],
            **{k: changes.pop(k) for k in list(changes) if k in _TRAIN_KEYS},
        }
        values.update(changes)
        try:
            return ProxyRecipe.model_validate(values)
        except ValidationError as exc:
            loc = [str(x) for x in exc.errors(include_url=False)[0]["loc"] if x != "train"]
            problems = settings_problems(exc).replace("train.", "")
            raise CoatnetError(
                f"{what}: {problems}.", param=f"proxy.{loc[0]}" if loc else "proxy"
            ) from None

    def train_recipe(self, data: ProxyData) -> TrainRecipe:
        """The training recipe for ``data``: ``evals_per_epoch`` reports per epoch for pruning."""
        if self.train.eval_every is not None:
            return self.train
        steps_per_epoch = data.steps_per_epoch(self.train.batch_size)  # full batches, as trained
        return self.train.model_copy(
            update={"eval_every": max(1, steps_per_epoch // self.evals_per_epoch)}
        )


# Options a ``train:...`` proxy string may set (data set and folder are fixed per study).
TRAINING_OPTIONS: tuple[str, ...] = (
    *(k for k in ProxyRecipe.model_fields if k not in (*_FIXED, "train")),
    *_TRAIN_KEYS,
)
