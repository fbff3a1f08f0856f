"""The promotion ladder: rungs of rising fidelity, and which candidates enter each one.

Rung 0 is the space's ``proxy`` recipe with one seed per sampled candidate. Each entry of a
space's ``rungs:`` adds a rung above it: a proxy recipe (the space's, with the rung's overrides),
how many candidates it takes from the rung below (``top``) and how many seeds each gets
(``seeds``). Baselines (yardsticks) enter every rung whatever their rank, and do not take a place
in ``top``.

A candidate is promoted as soon as its place is certain: it ranks ``i`` among the finished
candidates of the rung below, ``u`` more may still finish there, and ``i + u < top`` (even if all
of them beat it, it stays in). Once the rung below is complete (``u == 0``) that is simply its
top ``top``; with fewer finished candidates than ``top``, all of them. Ties rank the earlier trial
first, so every worker reaches the same decision. This keeps workers busy (promotions start while
rung 0 is still running, as in ASHA) without ever promoting a candidate that would not be in the
final top.

Everything here is pure: it reads :class:`Evaluation` records (one per trial) and returns what to
enqueue; :mod:`~coatnet_nas.search.promotion` does the Optuna side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "NOISE_SEEDS",
    "Entry",
    "Evaluation",
    "Promotion",
    "Rung",
    "arch_id",
    "entries",
    "promotions",
]

# Rung-0 seeds of baselines and of candidates promoted to rung 1: the proxy's own seed noise is
# measured on them (a sampled candidate gets one rung-0 seed, as before the ladder).
NOISE_SEEDS = 2


class Rung(BaseModel):
    """One rung above rung 0 (an entry of a search space's ``rungs:``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    top: int = Field(ge=1, le=1000, description="candidates taken from the rung below")
    seeds: int = Field(1, ge=1, le=20, description="seeds per candidate on this rung")
    proxy: dict[str, Any] = Field(
        default_factory=dict, description="overrides of the space's proxy recipe"
    )


def arch_id(params: dict[str, Any]) -> str:
    """A candidate's identity across rungs and seeds: its sampled parameters (they decide the
    architecture: ``SearchSpace.sample`` is a function of them)."""
    return json.dumps(params, sort_keys=True, default=str)


@dataclass(frozen=True)
class Evaluation:
    """What one trial says about ``(arch, rung, seed)``.

    ``state`` is ``pending`` (waiting or running), ``scored`` (``value`` set) or ``dead`` (ended
    without a score: failed, pruned, diverged; a re-queued copy is another, pending record).
    """

    number: int
    arch: str
    params: dict[str, Any]
    rung: int
    seed: int
    state: str
    value: float | None = None
    baseline: str | None = None


@dataclass
class Entry:
    """One architecture on one rung: its scores by seed."""

    arch: str
    rung: int
    params: dict[str, Any]
    first: int  # the lowest trial number: ties rank the earlier candidate first
    baseline: str | None = None
    scores: dict[int, float] = field(default_factory=dict)
    pending: set[int] = field(default_factory=set)
    dead: set[int] = field(default_factory=set)
    numbers: list[int] = field(default_factory=list)

    def finished(self, seeds: int) -> bool:
        """Every one of ``seeds`` seeds has a score or ended without one, none still running."""
        return all(
            s in self.scores or (s in self.dead and s not in self.pending) for s in range(seeds)
        )

    @property
    def mean(self) -> float | None:
        if not self.scores:
            return None
        return sum(self.scores.values()) / len(self.scores)

    def rank_value(self) -> float | None:
        """Rung 0 ranks by seed 0 (later noise seeds never reorder a decision); others by mean."""
        return self.scores.get(0) if self.rung == 0 else self.mean


def entries(evaluations: list[Evaluation]) -> dict[tuple[str, int], Entry]:
    """Group evaluations by ``(arch, rung)``; a baseline label on any of them marks the arch."""
    table: dict[tuple[str, int], Entry] = {}
    baselines = {e.arch: e.baseline for e in evaluations if e.baseline}
    for e in sorted(evaluations, key=lambda e: e.number):
        entry = table.setdefault(
            (e.arch, e.rung), Entry(e.arch, e.rung, e.params, e.number, baselines.get(e.arch))
        )
        entry.numbers.append(e.number)
        if e.state == "scored" and e.value is not None:
            entry.scores.setdefault(e.seed, e.value)
        elif e.state == "pending":
            entry.pending.add(e.seed)
        else:
            entry.dead.add(e.seed)
    for entry in table.values():  # a seed scored by one trial is not dead because another failed
        entry.dead -= set(entry.scores)
    return table


@dataclass(frozen=True)
class Promotion:
    """Enqueue ``arch`` (its ``params``) on ``rung`` with ``seed``."""

    arch: str
    params: dict[str, Any]
    rung: int
    seed: int
    baseline: str | None = None


def ranked(table: dict[tuple[str, int], Entry], rung: int, seeds: int) -> list[Entry]:
    """Finished, scored, non-baseline candidates of ``rung``, best first (ties: earlier first)."""
    done = [
        e
        for (_, r), e in table.items()
        if r == rung and e.baseline is None and e.finished(seeds) and e.rank_value() is not None
    ]
    return sorted(done, key=lambda e: (-(e.rank_value() or 0.0), e.first))


def promotions(
    evaluations: list[Evaluation],
    rungs: list[Rung],
    expected0: int,
) -> tuple[list[Promotion], list[bool]]:
    """What to enqueue now, and whether each rung is complete.

    ``rungs`` are the rungs above rung 0; ``expected0`` is how many rung-0 candidates the study
    will have scored or failed in all (the run's target, or what is in flight when it stops).
    """
    table = entries(evaluations)
    seeds = [1, *(r.seeds for r in rungs)]
    out: list[Promotion] = []
    complete: list[bool] = []
    # rung 0: candidates (baselines apart) with seed 0 finished, and how many may still come
    nonbase0 = [e for (_, r), e in table.items() if r == 0 and e.baseline is None]
    finished0 = sum(e.finished(1) for e in nonbase0)
    inflight0 = sum(not e.finished(1) for e in nonbase0)
    remaining = max(expected0 - finished0, inflight0)
    complete.append(remaining == 0 and all(e.finished(1) for (_, r), e in table.items() if r == 0))
    if rungs:  # baselines measure the proxy's seed noise at rung 0
        for (_, r), e in table.items():
            known = set(e.scores) | e.pending | e.dead
            if r == 0 and e.baseline is not None:
                out += [
                    Promotion(e.arch, e.params, 0, s, e.baseline)
                    for s in range(NOISE_SEEDS)
                    if s not in known
                ]
    for level, rung in enumerate(rungs, start=1):
        below = level - 1
        order = ranked(table, below, seeds[below])
        chosen = [e for i, e in enumerate(order[: rung.top]) if i + remaining < rung.top]
        wanted_base = NOISE_SEEDS if below == 0 else seeds[below]
        chosen += [
            e
            for (_, r), e in table.items()
            if r == below and e.baseline is not None and e.finished(wanted_base) and e.scores
        ]
        for e in chosen:
            have = table.get((e.arch, level))
            existing = set() if have is None else set(have.scores) | have.pending | have.dead
            out += [
                Promotion(e.arch, e.params, level, s, e.baseline)
                for s in range(rung.seeds)
                if s not in existing
            ]
            if below == 0:  # the proxy's seed noise, measured on what goes up
                base = table[(e.arch, 0)]
                known = set(base.scores) | base.pending | base.dead
                out += [
                    Promotion(e.arch, e.params, 0, s, e.baseline)
                    for s in range(NOISE_SEEDS)
                    if s not in known
                ]
        # how many candidates this rung will finish in all, and how many may still come
        members = {e.arch for (a, r), e in table.items() if r == level and e.baseline is None}
        members |= {e.arch for e in chosen if e.baseline is None}
        expected = min(rung.top, len(order)) if complete[-1] else rung.top
        finished = sum(
            1 for a in members if (a, level) in table and table[(a, level)].finished(rung.seeds)
        )
        inflight = len(members) - finished
        remaining = max(expected - finished, inflight)
        level_entries = [e for (_, r), e in table.items() if r == level]
        all_done = all(e.finished(rung.seeds) for e in level_entries)
        complete.append(
            complete[-1] and remaining == 0 and all_done and not any(p.rung == level for p in out)
        )
    return out, complete
