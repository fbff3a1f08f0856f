"""Drawing distinct architectures uniformly from a search space, within a budget.

A proxy check must rank a fair sample of what a search would see, so it samples the same space
with the same ``sample(trial)`` the search uses, through a uniform, seeded stand-in for Optuna's
trial.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from coatnet_nas.errors import CoatnetError

if TYPE_CHECKING:
    from coatnet_nas.proxies.recipe import ProxyRecipe
    from coatnet_nas.spec import ModelSpec

__all__ = ["ArchitectureSpace", "sample_architectures"]


class _Budget(Protocol):
    flops: int | None
    params: int | None


class ArchitectureSpace(Protocol):
    """What a proxy check needs of a search space (``coatnet_nas.search.SearchSpace`` is one).

    A protocol, not an import: search scores candidates with proxies, so proxies must not depend
    on search.
    """

    name: str
    budget: _Budget
    proxy: ProxyRecipe

    def sample(self, trial: Any) -> ModelSpec: ...


class _RandomTrial:
    """Just enough of Optuna's trial API for ``SearchSpace.sample``: uniform, seeded choices."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def suggest_int(self, name: str, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self.rng.choice(list(choices))


def sample_architectures(
    space: ArchitectureSpace,
    n: int,
    seed: int = 0,
    flops: int | None = None,
    params: int | None = None,
    max_draws: int | None = None,
) -> list[ModelSpec]:
    """``n`` distinct specs drawn uniformly from ``space`` that fit the budget (closed form)."""
    from coatnet_nas.cost import estimate_cost

    if n < 2:
        raise CoatnetError(
            f"n: a rank correlation needs at least 2 architectures, got {n}.", param="n"
        )
    rng = random.Random(seed)
    trial = _RandomTrial(rng)
    max_draws = max_draws or 200 * n
    seen: set[str] = set()
    out: list[ModelSpec] = []
    draws = 0
    while len(out) < n and draws < max_draws:
        draws += 1
        spec = space.sample(trial)
        key = json.dumps(spec.to_dict(), sort_keys=True)
        if key in seen:
            continue
        cost = estimate_cost(spec)
        if (flops is not None and cost.flops > flops) or (
            params is not None and cost.params > params
        ):
            continue
        seen.add(key)
        out.append(spec.evolve(name=f"{space.name}-arch{len(out)}"))
    if len(out) < n:
        raise CoatnetError(
            f"found only {len(out)} distinct architectures within the budget in {draws} draws; "
            "lower n, raise the budget, or widen the search space.",
            param="n",
        )
    return out
