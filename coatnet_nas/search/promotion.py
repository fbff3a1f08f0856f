"""The ladder's Optuna side: read a study's trials as evaluations, enqueue the promotions.

A promotion is an enqueued trial with the candidate's parameters and ``rung``/``seed`` user
attributes (plus ``yardstick`` for a baseline). Workers pick queued trials before sampling new
ones, so a promoted candidate is trained by the next free worker. Enqueuing runs under the run's
lock (one enqueuer among a run's local workers); two runs on other machines that promote the same
candidate at once both enqueue it, and the second trial is told the first one's result by the
per-(architecture, rung, seed) dedupe, never trained twice.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from coatnet_nas.search.config import SearchConfig, TrialStatus
from coatnet_nas.search.liveness import params_of
from coatnet_nas.search.objective import RUNG_ATTR, SEED_ATTR
from coatnet_nas.search.rungs import Evaluation, arch_id, promotions

__all__ = ["YARDSTICK_ATTR", "evaluation", "ladder_state", "params_of", "promote"]

YARDSTICK_ATTR = "yardstick"
_NOT_CANDIDATES = {TrialStatus.OVER_BUDGET.value}


def evaluation(t: FrozenTrial) -> Evaluation | None:
    """What ``t`` says about its architecture on its rung and seed (``None``: not a candidate)."""
    a = t.user_attrs
    if a.get("status") in _NOT_CANDIDATES and not a.get(RUNG_ATTR) and not a.get(SEED_ATTR):
        return None  # a sampled draw over the budget was never a candidate (a promotion is one)
    params = params_of(t)
    if t.state in (TrialState.WAITING, TrialState.RUNNING):
        state, value = "pending", None
    elif t.state == TrialState.COMPLETE and t.values:
        state, value = "scored", float(t.values[0])
    else:
        state, value = "dead", None
    return Evaluation(
        number=t.number,
        arch=arch_id(params),
        params=params,
        rung=int(a.get(RUNG_ATTR, 0)),
        seed=int(a.get(SEED_ATTR, 0)),
        state=state,
        value=value,
        baseline=a.get(YARDSTICK_ATTR),
    )


def evaluations(trials: list[FrozenTrial]) -> list[Evaluation]:
    return [e for e in map(evaluation, trials) if e is not None]


def ladder_state(
    trials: list[FrozenTrial], config: SearchConfig, expected0: int
) -> tuple[list[Any], list[bool]]:
    """``(promotions due, complete per rung)`` for the study's ladder."""
    return promotions(evaluations(trials), list(config.ladder), expected0)


def promote(
    study: optuna.Study, config: SearchConfig, trials: list[FrozenTrial], expected0: int
) -> tuple[int, bool]:
    """Enqueue the promotions due; return ``(how many, whether the whole ladder is complete)``.

    ``expected0`` is how many rung-0 candidates the study will finish in all (0 once no new
    one will be drawn: then only those in flight can still change rung 0's ranking).
    """
    if not config.ladder:
        return 0, True
    due, complete = ladder_state(trials, config, expected0)
    for p in due:
        attrs: dict[str, Any] = {RUNG_ATTR: p.rung, SEED_ATTR: p.seed}
        if p.baseline is not None:
            attrs[YARDSTICK_ATTR] = p.baseline
        study.enqueue_trial(p.params, user_attrs=attrs, skip_if_exists=False)
    return len(due), complete[-1]
