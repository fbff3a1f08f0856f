"""Samplers and pruners by name, the way Optuna keeps them apart from storages and studies.

A name is turned into its enum once, where it enters the library (:meth:`Sampler.parse`); the
factories then take the enum and cannot meet an unknown name. Optuna is imported by the factories
only, so the command line can offer the enums as choices without paying for Optuna at start-up.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, TypeVar

from coatnet_nas.errors import CoatnetError

if TYPE_CHECKING:
    import optuna

__all__ = ["Pruner", "Sampler", "make_pruner", "make_sampler"]

_C = TypeVar("_C", bound="_Choice")


class _Choice(str, Enum):
    """A str Enum whose bad values become a :class:`CoatnetError` naming the parameter."""

    @classmethod
    def parse(cls: type[_C], value: str, param: str) -> _C:
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(m.value for m in cls)
            raise CoatnetError(
                f"{param} must be one of {allowed}, got {value!r}.", param=param
            ) from None


class Sampler(_Choice):
    """How the next candidate is proposed (``tpe`` becomes ``nsga2`` with several objectives)."""

    TPE = "tpe"
    RANDOM = "random"
    NSGA2 = "nsga2"


class Pruner(_Choice):
    """How a training proxy is stopped early; multi-objective studies never prune."""

    HYPERBAND = "hyperband"
    MEDIAN = "median"
    NONE = "none"


def make_sampler(
    sampler: Sampler, seed: int, multi_objective: bool = False
) -> optuna.samplers.BaseSampler:
    """The Optuna sampler for ``sampler``; constant liar keeps parallel TPE workers apart."""
    import optuna

    if sampler is Sampler.TPE and multi_objective:
        sampler = Sampler.NSGA2  # a Pareto front needs a population, not one density ratio
    if sampler is Sampler.TPE:
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=5, multivariate=True, constant_liar=True
        )
    if sampler is Sampler.RANDOM:
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=8)


def make_pruner(pruner: Pruner, multi_objective: bool = False) -> optuna.pruners.BasePruner:
    """The Optuna pruner for ``pruner`` (a no-op one where Optuna cannot prune)."""
    import optuna

    if multi_objective or pruner is Pruner.NONE:
        return optuna.pruners.NopPruner()  # multi-objective studies cannot prune
    if pruner is Pruner.HYPERBAND:
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
