"""Proxy check: how well does a cheap score rank architectures, on the user's own data?

:func:`run_proxy_check` samples ``n`` distinct architectures that fit the budget (uniformly, from
the same search space a search would use), scores each with every proxy and with a longer
*reference* recipe, and reports Spearman's rho, Kendall's tau-b and the top-k overlap of each
proxy against the reference. A proxy that cannot beat ``params``/``flops`` here is not worth its
cost, whatever it scored on a published benchmark.

A check stopped by a signal (Ctrl-C, SIGTERM) is not thrown away: the scores finished so far come
back in a result whose ``interrupted`` names the signal (the unit in flight has the status
``interrupted``, the ones never started an empty one), so the caller writes the partial table
and then exits as the signal asks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coatnet_nas import signals
from coatnet_nas.errors import CoatnetError
from coatnet_nas.proxies.evaluate import ProxyEvaluator
from coatnet_nas.proxies.parse import ProxySpec, parse_proxies, parse_proxy
from coatnet_nas.proxies.rank import kendall_tau, spearman, top_k_overlap
from coatnet_nas.proxies.sample import ArchitectureSpace, sample_architectures

if TYPE_CHECKING:
    from coatnet_nas.spec import ModelSpec

__all__ = [
    "DEFAULT_PROXIES",
    "DEFAULT_REFERENCE",
    "ArchitectureSpace",
    "CheckEvent",
    "ProxyCheckResult",
    "ProxyStats",
    "run_proxy_check",
    "sample_architectures",
]

DEFAULT_REFERENCE = "train:epochs=10"
DEFAULT_PROXIES = "train:epochs=1,naswot,synflow,snip,grad_norm,jacob_cov,params,flops"


@dataclass(frozen=True)
class ProxyStats:
    """Agreement of one proxy with the reference over the architectures both scored."""

    proxy: str
    spearman: float
    kendall: float
    top_k: float
    k: int
    n: int
    seconds_per_arch: float

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in vars(self).items()
        }


@dataclass
class CheckEvent:
    """Progress: architecture ``arch`` (0-based) of ``n`` got ``value`` from ``proxy``."""

    arch: int
    n: int
    proxy: str
    value: float
    seconds: float
    done: int
    total: int


@dataclass
class ProxyCheckResult:
    """Scores of every architecture under every proxy, the reference, and the statistics."""

    reference: str
    proxies: list[str]
    specs: list[ModelSpec]
    values: dict[str, list[float]]
    seconds: dict[str, list[float]]
    statuses: dict[str, list[str]]
    stats: list[ProxyStats]
    k: int
    wall_seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, list[list[tuple[float, float]]]] = field(default_factory=dict)
    training: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    interrupted: str | None = None  # the stop signal's name when the check did not finish

    def curve_correlations(self, label: str | None = None) -> list[dict[str, float]]:
        """Rank agreement of a training recipe's intermediate evaluations with the reference.

        For each evaluation index present in every architecture's curve of ``label`` (default:
        the reference), Spearman/Kendall of the accuracy at that point vs the reference values:
        how early the run could have been cut (with its schedule still running) and agreed.
        """
        label = label or self.reference
        curves = self.curves.get(label, [])
        ref = self.values[self.reference]
        if not curves or any(not c for c in curves):
            return []
        out = []
        for j in range(min(len(c) for c in curves)):
            xs = [c[j][1] for c in curves]
            stats = proxy_stats(f"{label}@{j}", xs, ref, self.k)
            out.append(
                {"epoch": curves[0][j][0], "spearman": stats.spearman, "kendall": stats.kendall}
            )
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per architecture (the CSV)."""
        from coatnet_nas.cost import estimate_cost

        rows = []
        for i, spec in enumerate(self.specs):
            cost = estimate_cost(spec)
            row: dict[str, Any] = {
                "arch": i,
                "layout": spec.layout,
                "depths": "-".join(map(str, spec.depths)),
                "widths": "-".join(map(str, spec.widths)),
                "target_params": cost.params,
                "target_flops": cost.flops,
                f"reference {self.reference}": self.values[self.reference][i],
            }
            for p in self.proxies:
                row[p] = self.values[p][i]
            rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        def clean(v: float) -> float | None:  # JSON has no NaN or infinity
            return v if math.isfinite(v) else None

        return {
            "reference": self.reference,
            "proxies": self.proxies,
            "k": self.k,
            "n": len(self.specs),
            "wall_seconds": round(self.wall_seconds, 2),
            "interrupted": self.interrupted,
            "settings": self.settings,
            "stats": [s.to_dict() for s in self.stats],
            "architectures": [
                {
                    "spec": spec.to_dict(),
                    "values": {p: clean(self.values[p][i]) for p in self.values},
                    "seconds": {p: round(self.seconds[p][i], 3) for p in self.seconds},
                    "status": {p: self.statuses[p][i] for p in self.statuses},
                    "curves": {p: self.curves[p][i] for p in self.curves},
                    "training": {
                        p: {k: clean(v) if isinstance(v, float) else v for k, v in t[i].items()}
                        for p, t in self.training.items()
                    },
                }
                for i, spec in enumerate(self.specs)
            ],
        }


def proxy_stats(
    proxy: str,
    values: Sequence[float],
    reference: Sequence[float],
    k: int,
    seconds: Sequence[float] = (),
) -> ProxyStats:
    """Statistics over the architectures where both values are numbers (NaN = failed)."""
    pairs = [
        (v, r)
        for v, r in zip(values, reference, strict=True)
        if not (math.isnan(v) or math.isnan(r))
    ]
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    n = len(pairs)
    return ProxyStats(
        proxy=proxy,
        spearman=spearman(xs, ys) if n >= 2 else math.nan,
        kendall=kendall_tau(xs, ys) if n >= 2 else math.nan,
        top_k=top_k_overlap(xs, ys, min(k, n)) if n else math.nan,
        k=min(k, n),
        n=n,
        seconds_per_arch=sum(seconds) / len(seconds) if seconds else math.nan,
    )


def _score_one(evaluator, proxy, spec, i, values, seconds, statuses, curves, training) -> None:
    """Score architecture ``i`` with ``proxy`` into the result tables (NaN if it raises)."""
    label = proxy.label
    try:
        outcome = evaluator.evaluate(proxy, spec)
    except CoatnetError:
        raise
    except Exception as exc:  # one broken candidate must not end the check
        values[label][i], statuses[label][i] = math.nan, f"error: {type(exc).__name__}"
        return
    values[label][i] = outcome.value
    seconds[label][i] = outcome.seconds
    statuses[label][i] = outcome.status
    result = outcome.detail.get("result")
    if result is not None:  # validation accuracy at every evaluation of the run
        curves[label][i] = [(round(e.epoch, 3), e.val_accuracy) for e in result.history]
        training[label][i] = {  # train accuracy far above val flags stale BN stats
            "steps": result.steps,
            "train_loss": result.train_loss,
            "train_accuracy": result.train_accuracy,
        }


def run_proxy_check(
    space: ArchitectureSpace,
    n: int = 16,
    reference: str | ProxySpec = DEFAULT_REFERENCE,
    proxies: str | Sequence[ProxySpec] = DEFAULT_PROXIES,
    *,
    seed: int = 0,
    device: str = "auto",
    top_k: int | None = None,
    flops: int | None = None,
    params: int | None = None,
    on_event: Callable[[CheckEvent], None] | None = None,
) -> ProxyCheckResult:
    """Sample ``n`` feasible architectures and correlate every proxy with the reference.

    The budget defaults to the space's. ``top_k`` defaults to a quarter of ``n`` (rounded up).
    An architecture whose proxy run raises gets NaN for that proxy (left out of its statistics);
    a diverged training run keeps the accuracy it reached, which ranks it low. A stop signal
    ends the check early with ``interrupted`` set (see the module docstring).
    """
    start = time.perf_counter()
    ref = parse_proxy(reference) if isinstance(reference, str) else reference
    checks = parse_proxies(proxies) if isinstance(proxies, str) else list(proxies)
    if ref.label in {p.label for p in checks}:
        raise CoatnetError(f"proxies: {ref.label} is the reference itself.", param="proxies")
    k = top_k if top_k is not None else max(1, math.ceil(n / 4))
    if not 1 <= k <= n:
        raise CoatnetError(f"top_k: must be between 1 and n ({n}), got {k}.", param="top_k")
    flops = flops if flops is not None else space.budget.flops
    params = params if params is not None else space.budget.params
    evaluator = ProxyEvaluator(space.proxy, seed=seed, device=device)
    order = [*checks, ref]  # cheap ones first, so partial progress is informative
    for proxy in order:  # fail on bad options or a missing data set before any work
        evaluator.recipe(proxy)
        evaluator.data(proxy)
    specs = sample_architectures(space, n, seed=seed, flops=flops, params=params)
    values = {p.label: [math.nan] * n for p in order}
    seconds = {p.label: [0.0] * n for p in order}
    statuses = {p.label: [""] * n for p in order}
    curves: dict[str, list[list[tuple[float, float]]]] = {
        p.label: [[] for _ in range(n)] for p in order if p.is_training
    }
    training: dict[str, list[dict[str, Any]]] = {p: [{} for _ in range(n)] for p in curves}
    total = n * len(order)
    units = [(i, spec, proxy) for i, spec in enumerate(specs) for proxy in order]
    interrupted, current = None, None
    try:
        for done, (i, spec, proxy) in enumerate(units, start=1):
            current = (proxy.label, i)
            _score_one(evaluator, proxy, spec, i, values, seconds, statuses, curves, training)
            current = None
            if on_event is not None:
                label = proxy.label
                on_event(CheckEvent(i, n, label, values[label][i], seconds[label][i], done, total))
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: keep what was scored, say why
        interrupted = signals.stop_name(exc)
        if current is not None:
            statuses[current[0]][current[1]] = "interrupted"
    stats = [
        proxy_stats(p.label, values[p.label], values[ref.label], k, seconds[p.label])
        for p in checks
    ]
    settings = {
        "space": space.name,
        "dataset": space.proxy.dataset,
        "seed": seed,
        "budget_flops": flops,
        "budget_params": params,
        "proxy_recipe": space.proxy.model_dump(mode="json"),
    }
    return ProxyCheckResult(
        reference=ref.label,
        proxies=[p.label for p in checks],
        specs=specs,
        values=values,
        seconds=seconds,
        statuses=statuses,
        stats=stats,
        k=k,
        wall_seconds=time.perf_counter() - start,
        settings=settings,
        curves=curves,
        training=training,
        interrupted=interrupted,
    )
