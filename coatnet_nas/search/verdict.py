"""The arithmetic of a search's verdict: intervals over seeds, margins, rung correlations, noise.

Pure functions of plain numbers (accuracies in [0, 1]; texts in percentage points), so each can be
checked by hand:

- :func:`mean_ci95` is the mean over seeds with the half-width of a 95% Student-t interval
  (``None`` with one seed: one sample has no spread to measure);
- :func:`margin` is the difference of two means with a Welch 95% interval, and :func:`verdict`
  says it in words: "beats X by 1.2 ± 0.4 points" only when the interval excludes zero, otherwise
  "not distinguishable from X";
- :func:`rung_correlation` is Spearman's rho between consecutive rungs over the candidates scored
  on both (the search measuring its own proxy's fidelity);
- :func:`seed_noise` is the pooled within-architecture standard deviation of repeated seeds and
  the 95% half-width of the difference between two single-seed scores: differences below it are
  noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from coatnet_nas.proxies.rank import spearman

__all__ = [
    "Interval",
    "margin",
    "mean_ci95",
    "rung_correlation",
    "seed_noise",
    "t975",
    "verdict",
]

# 97.5% quantiles of Student's t for 1..30 degrees of freedom (two-sided 95% intervals).
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t975(df: float) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (``df`` >= 1; fractional
    Welch degrees round down, which widens the interval slightly; above 30: 1.96-ish)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    k = math.floor(df)
    if k <= len(_T975):
        return _T975[k - 1]
    return 1.959964 + 2.4 / k  # within 0.002 of the exact value above 30


@dataclass(frozen=True)
class Interval:
    """``mean ± half`` (``half`` is ``None`` when it cannot be measured) over ``n`` values."""

    mean: float
    half: float | None
    n: int

    def as_list(self) -> list[float] | None:
        return None if self.half is None else [self.mean - self.half, self.mean + self.half]


def _var(values: Sequence[float]) -> float:
    m = sum(values) / len(values)
    return sum((v - m) ** 2 for v in values) / (len(values) - 1)


def mean_ci95(values: Sequence[float]) -> Interval:
    """Mean with a 95% t-interval over ``values`` (one value: no interval)."""
    if not values:
        raise ValueError("mean_ci95 needs at least one value")
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return Interval(mean, None, 1)
    return Interval(mean, t975(n - 1) * math.sqrt(_var(values) / n), n)


def margin(a: Sequence[float], b: Sequence[float]) -> Interval:
    """``mean(a) - mean(b)`` with a Welch 95% interval (``None`` unless both have >= 2 values;
    two zero variances give a zero-width interval)."""
    diff = sum(a) / len(a) - sum(b) / len(b)
    if len(a) < 2 or len(b) < 2:
        return Interval(diff, None, min(len(a), len(b)))
    va, vb = _var(a) / len(a), _var(b) / len(b)
    se2 = va + vb
    if se2 == 0:
        return Interval(diff, 0.0, min(len(a), len(b)))
    df = se2**2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return Interval(diff, t975(max(1.0, df)) * math.sqrt(se2), min(len(a), len(b)))


def verdict(diff: Interval, baseline: str) -> str:
    """The margin over ``baseline`` in plain words (accuracies become percentage points)."""
    d = diff.mean * 100
    if diff.half is None:
        return (
            f"{'beats' if d > 0 else 'trails'} {baseline} by {abs(d):.1f} points on too few "
            "seeds to tell (no interval: give each at least 2 seeds on the top rung)"
        )
    h = diff.half * 100
    if diff.mean - diff.half > 0:
        return f"beats {baseline} by {d:.1f} ± {h:.1f} points"
    if diff.mean + diff.half < 0:
        return f"is beaten by {baseline} by {-d:.1f} ± {h:.1f} points"
    return f"not distinguishable from {baseline} ({d:+.1f} ± {h:.1f} points)"


def rung_correlation(lower: dict[str, float], upper: dict[str, float]) -> tuple[float | None, int]:
    """Spearman's rho between two rungs over the candidates scored on both, and how many.

    ``None`` with fewer than 3 shared candidates or a constant side (no ranking to compare).
    """
    shared = sorted(set(lower) & set(upper))
    if len(shared) < 3:
        return None, len(shared)
    rho = spearman([lower[k] for k in shared], [upper[k] for k in shared])
    return (None if math.isnan(rho) else rho), len(shared)


def seed_noise(groups: Sequence[Sequence[float]]) -> tuple[float | None, float | None, int]:
    """``(pooled sd, 95% half-width of a single-seed difference, groups used)``.

    Pools the variance of every architecture scored with >= 2 seeds (degrees of freedom summed);
    two single-seed scores of equally good architectures differ by less than the half-width 95%
    of the time.
    """
    used = [g for g in groups if len(g) >= 2]
    df = sum(len(g) - 1 for g in used)
    if df == 0:
        return None, None, 0
    pooled = math.sqrt(sum(_var(g) * (len(g) - 1) for g in used) / df)
    return pooled, t975(df) * math.sqrt(2) * pooled, len(used)
