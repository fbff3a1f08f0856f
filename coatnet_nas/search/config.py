"""What a study is: its :class:`SearchConfig` (stored in the study) and its trials' statuses.

A study is self-describing: every worker reads the config from the storage and scores trials the
same way. Configs are compared by value, so a study stored in an older form (a flat proxy recipe)
still matches the same settings given today.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import ValidationError

from coatnet_nas.errors import CoatnetError
from coatnet_nas.search.space import SearchSpace
from coatnet_nas.spec import settings_problems

__all__ = ["COUNTED", "EVALUATED", "OBJECTIVES", "SearchConfig", "TrialStatus"]

OBJECTIVES = {"accuracy": "maximize", "flops": "minimize", "params": "minimize"}


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
    """What every worker needs to score trials the same way; stored in the study itself."""

    space: SearchSpace
    flops: int | None = None
    params: int | None = None
    objectives: tuple[str, ...] = ("accuracy",)
    seed: int = 0
    proxy: str = "train"

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
        if self.flops is None and self.params is None:
            raise CoatnetError(
                "a search needs a budget: give flops and/or params (or a budget: section in the "
                "search space).",
                param="flops",
            )

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
