"""A ladder study's answer: finalists on the top rung, the winner, verdicts against baselines.

:func:`summarize` reads a study's trials (through :mod:`~coatnet_nas.search.rungs`) and applies
:mod:`~coatnet_nas.search.verdict`'s arithmetic. The top rung is the highest one with a finished,
scored candidate, so a ladder cut short (a timeout, a stopped run) still has an answer, stated
with the rung it was validated on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from optuna.trial import FrozenTrial

from coatnet_nas.search.config import SearchConfig
from coatnet_nas.search.promotion import evaluations
from coatnet_nas.search.rungs import NOISE_SEEDS, Entry, entries
from coatnet_nas.search.verdict import (
    margin,
    mean_ci95,
    rung_correlation,
    seed_noise,
    verdict,
)

__all__ = ["LadderSummary", "summarize"]

FINALISTS_SHOWN = 10


@dataclass
class LadderSummary:
    """What ``coatnet report --json`` prints next to the trials (plain JSON values)."""

    rungs: int
    top_rung: int | None
    complete: bool
    finalists: list[dict[str, Any]] = field(default_factory=list)
    baselines: list[dict[str, Any]] = field(default_factory=list)
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    rung_correlations: list[dict[str, Any]] = field(default_factory=list)
    noise: dict[str, Any] | None = None
    winner_trial: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rungs": self.rungs,
            "top_rung": self.top_rung,
            "complete": self.complete,
            "finalists": self.finalists,
            "baselines": self.baselines,
            "verdicts": self.verdicts,
            "rung_correlations": self.rung_correlations,
            "noise": self.noise,
        }


def _seeds_for(config: SearchConfig, rung: int) -> int:
    return 1 if rung == 0 else config.ladder[rung - 1].seeds


def _row(e: Entry, specs: dict[int, dict], layouts: dict[int, Any]) -> dict[str, Any]:
    values = [e.scores[s] for s in sorted(e.scores)]
    ci = mean_ci95(values)
    number = next((n for n in sorted(e.numbers) if n in specs), None)
    spec = specs.get(number) if number is not None else None
    return {
        "rung": e.rung,
        "mean": ci.mean,
        "ci95": ci.as_list(),
        "half_width": ci.half,
        "seeds": len(values),
        "scores": values,
        "trials": sorted(e.numbers),
        "baseline": e.baseline,
        "layout": layouts.get(number),
        "spec": spec,
    }


def summarize(trials: list[FrozenTrial], config: SearchConfig) -> LadderSummary:
    """The ladder's summary of ``trials`` (a study without a ladder: rung 0 alone)."""
    from coatnet_nas.search.promotion import ladder_state

    specs = {t.number: t.user_attrs["spec"] for t in trials if "spec" in t.user_attrs}
    layouts = {t.number: t.user_attrs.get("layout") for t in trials}
    table = entries(evaluations(trials))
    levels = len(config.ladder) + 1
    complete = ladder_state(trials, config, 0)[1][-1] if config.ladder else True

    def wanted(rung: int, e: Entry) -> int:
        noise = config.ladder and rung == 0 and e.baseline is not None
        return NOISE_SEEDS if noise else _seeds_for(config, rung)

    done = {key: e for key, e in table.items() if e.scores and e.finished(wanted(key[1], e))}
    searched = [r for (_, r), e in done.items() if e.baseline is None]
    top = max(searched, default=None)
    summary = LadderSummary(levels, top, complete)
    if top is None:
        return summary
    finalists = sorted(
        (e for (_, r), e in done.items() if r == top and e.baseline is None),
        key=lambda e: (-(e.mean or 0.0), e.first),
    )
    summary.finalists = [_row(e, specs, layouts) for e in finalists[:FINALISTS_SHOWN]]
    winner = finalists[0]
    summary.winner_trial = min(n for n in winner.numbers if n in specs)
    labels = sorted({e.baseline for e in table.values() if e.baseline})
    for label in labels:
        reached = [e for (_, r), e in done.items() if e.baseline == label]
        if not reached:
            summary.verdicts.append(
                {
                    "baseline": label,
                    "rung": None,
                    "text": (f"{label} has no score (over the budget, failed, or not run yet)"),
                }
            )
            continue
        best = max(reached, key=lambda e: e.rung)
        summary.baselines.append({**_row(best, specs, layouts), "label": label})
        if best.rung != top:
            summary.verdicts.append(
                {
                    "baseline": label,
                    "rung": best.rung,
                    "text": (f"{label} reached rung {best.rung} only; no comparison on rung {top}"),
                }
            )
            continue
        diff = margin(list(winner.scores.values()), list(best.scores.values()))
        summary.verdicts.append(
            {
                "baseline": label,
                "rung": top,
                "margin": diff.mean,
                "half_width": diff.half,
                "ci95": diff.as_list(),
                "text": verdict(diff, label),
            }
        )
    for r in range(levels - 1):
        lower = {a: e.mean for (a, rr), e in done.items() if rr == r and e.mean is not None}
        upper = {a: e.mean for (a, rr), e in done.items() if rr == r + 1 and e.mean is not None}
        rho, n = rung_correlation(lower, upper)
        summary.rung_correlations.append({"rungs": [r, r + 1], "spearman": rho, "n": n})
    groups = [list(e.scores.values()) for (_, r), e in table.items() if r == 0]
    sd, half, used = seed_noise(groups)
    if sd is not None:
        summary.noise = {
            "rung": 0,
            "sd": sd,
            "half_width": half,
            "architectures": used,
            "text": f"differences below ±{half * 100:.1f} points at rung 0 are noise "
            f"(seed-to-seed, {used} architecture{'s' if used != 1 else ''} with repeated seeds)",
        }
    return summary
