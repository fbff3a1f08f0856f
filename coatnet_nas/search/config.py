"""What a study is: its :class:`SearchConfig` (stored in the study) and its trials' statuses.

A study is self-describing: every worker reads the config from the storage and scores trials the
same way. Configs are compared by value, so a study stored in an older form (a flat proxy recipe)
still matches the same settings given today.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from typing import Any

from pydantic import ValidationError

from coatnet_nas.errors import CoatnetError
from coatnet_nas.latency import LatencyTable, check_table_covers, estimate_latency, sample_specs
from coatnet_nas.search.space import SearchSpace
from coatnet_nas.spec import settings_problems

__all__ = ["COUNTED", "EVALUATED", "OBJECTIVES", "SearchConfig", "TrialStatus"]

OBJECTIVES = {
    "accuracy": "maximize",
    "flops": "minimize",
    "params": "minimize",
    "latency": "minimize",  # predicted from the study's latency table, in milliseconds
}


class TrialStatus(str, Enum):
    """Why a trial ended as it did: its ``status`` user attribute (values are stored as is).

    ``ok``, ``budget`` and ``stopped`` are scored trials (the last two: the training's seconds
    budget or a callback ended the run, as the trainer's own run status says); the others end
    PRUNED (``over_budget``, ``pruned``, ``diverged``, ``invalid_score``) or FAIL (``error``).
    ``duplicate`` trials were told an earlier trial's result (same architecture, not trained);
    ``interrupted`` (Ctrl-C) and ``worker_died`` trials end FAIL and are re-queued.
    """

    OK = "ok"
    BUDGET = "budget"
    STOPPED = "stopped"
    OVER_BUDGET = "over_budget"
    PRUNED = "pruned"
    DIVERGED = "diverged"
    INVALID_SCORE = "invalid_score"
    ERROR = "error"
    DUPLICATE = "duplicate"
    INTERRUPTED = "interrupted"
    WORKER_DIED = "worker_died"


# Trials whose architecture was evaluated (trained or scored): a later same-key trial reuses them.
EVALUATED = frozenset(
    s.value
    for s in (
        TrialStatus.OK,
        TrialStatus.BUDGET,
        TrialStatus.STOPPED,
        TrialStatus.PRUNED,
        TrialStatus.DIVERGED,
        TrialStatus.INVALID_SCORE,
    )
)
# What a run's trial count counts: an evaluation, or a failed attempt at one (it cost the time).
COUNTED = EVALUATED | {TrialStatus.ERROR.value}


@dataclass(frozen=True)
class SearchConfig:
    """What every worker needs to score trials the same way; stored in the study itself.

    (Over ~120 lines: its validation, the budget/latency views and the JSON round trip that makes
    a resumed study compare equal all read the same fields.)
    """

    space: SearchSpace
    flops: int | None = None
    params: int | None = None
    objectives: tuple[str, ...] = ("accuracy",)
    seed: int = 0
    proxy: str = "train"
    max_latency: float | None = None  # seconds, predicted from latency_table
    latency_table: dict[str, Any] | None = None  # a LatencyTable's JSON, stored with the study

    def __post_init__(self) -> None:
        if self.proxy != "train":
            from coatnet_nas.proxies import parse_proxy

            parsed = parse_proxy(self.proxy)
            if parsed.is_training:
                raise CoatnetError(
                    f"proxy {self.proxy!r}: a search's 'train' proxy is the search space's proxy "
                    "recipe (set or override its epochs and subset there); pass plain 'train'.",
                    param="proxy",
                )
            object.__setattr__(self, "proxy", parsed.label)  # canonical text, stable study config
        given = ",".join(self.objectives)
        if not self.objectives or self.objectives[0] != "accuracy":
            raise CoatnetError(
                f"objectives must start with accuracy, e.g. accuracy alone or accuracy then "
                f"flops; got {given!r}.",
                param="objectives",
            )
        unknown = [o for o in self.objectives if o not in OBJECTIVES]
        if unknown or len(set(self.objectives)) != len(self.objectives):
            raise CoatnetError(
                f"objectives: unknown or repeated objective in {given!r}; "
                f"allowed: {', '.join(OBJECTIVES)}.",
                param="objectives",
            )
        if self.flops is None and self.params is None and self.max_latency is None:
            raise CoatnetError(
                "a search needs a budget: give `flops`, `params` and/or `max_latency` (or a "
                "budget: section in the search space).",
                param="flops",
            )
        self._check_latency()

    def _check_latency(self) -> None:
        wants = self.max_latency is not None or "latency" in self.objectives
        if wants and self.latency_table is None:
            raise CoatnetError(
                "a latency budget or objective needs latency_table: a table from 'coatnet "
                "latency table' for the device the model will run on.",
                param="latency_table",
            )
        if self.max_latency is not None and not (0 < self.max_latency < float("inf")):
            raise CoatnetError(
                f"max_latency must be a positive number of seconds, got {self.max_latency!r}.",
                param="max_latency",
            )
        if self.latency_table is not None:  # a table for another space fails here, not per trial
            check_table_covers(sample_specs(self.space, 4, seed=0), self.table)

    @cached_property
    def table(self) -> LatencyTable:
        """The parsed latency table (refused, located, if the stored JSON is not one)."""
        try:
            return LatencyTable.model_validate(self.latency_table)
        except ValidationError as exc:
            raise CoatnetError(
                f"latency_table is not a valid latency table ({settings_problems(exc, 'table')}).",
                param="latency_table",
            ) from None

    def latency_ms(self, spec: Any) -> float | None:
        """The spec's predicted latency in milliseconds, when the study has a table."""
        if self.latency_table is None:
            return None
        return estimate_latency(spec, self.table) * 1e3

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[o] for o in self.objectives]

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def training_free(self) -> bool:
        return self.proxy != "train"

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values, the proxy recipe in its current (nested) form."""
        return {
            "space": self.space.model_dump(mode="json"),
            "flops": self.flops,
            "params": self.params,
            "objectives": list(self.objectives),
            "seed": self.seed,
            "proxy": self.proxy,
        } | {  # absent when unset, as stored before these fields existed
            key: value
            for key, value in (
                ("max_latency", self.max_latency),
                ("latency_table", self.latency_table),
            )
            if value is not None
        }

    def to_json(self) -> str:
        data = self.as_dict()
        if not self.training_free:  # absent for "train": as stored before this field existed
            del data["proxy"]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SearchConfig:
        """Parse a stored config; older forms (a flat proxy recipe) read as their meaning."""
        try:
            data = json.loads(text)
            return cls(
                space=SearchSpace.model_validate(data["space"]),
                flops=data["flops"],
                params=data["params"],
                objectives=tuple(data["objectives"]),
                seed=data["seed"],
                proxy=data.get("proxy", "train"),
                max_latency=data.get("max_latency"),
                latency_table=data.get("latency_table"),
            )
        except (ValueError, KeyError, TypeError) as exc:  # ValidationError is a ValueError
            problem = (
                settings_problems(exc, "space")
                if isinstance(exc, ValidationError)
                else f"{type(exc).__name__}: {exc}"
            )
            raise CoatnetError(
                f"stored search configuration cannot be read by this version ({problem}); it was "
                "edited or written by an incompatible version: restore it, or search into a new "
                "study (another study name)."
            ) from None

    def differences(self, other: SearchConfig) -> list[str]:
        """The settings that differ, as ``dotted.name self -> other``, compared by value."""
        return _differences(self.as_dict(), other.as_dict())


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d
            for key in sorted(set(a) | set(b), key=str)
            for d in _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        ]
    return [] if a == b else [f"{prefix.rstrip('.')} {_short(a)} -> {_short(b)}"]


def _short(value: Any, limit: int = 60) -> str:
    text = "unset" if value is None else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
