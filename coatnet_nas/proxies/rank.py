"""Rank statistics for judging a proxy: Spearman's rho, Kendall's tau-b and top-k overlap.

Small, dependency-free versions (no scipy): a proxy check compares a dozen or a few hundred
architectures, so O(n^2) Kendall is instant. Ties get average ranks (Spearman) and the tau-b
correction (Kendall), which matters because ``params``/``flops`` and short-trained accuracies on a
small validation split tie often. A constant input has no ranking: the statistics are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["kendall_tau", "rankdata", "spearman", "top_k_overlap"]


def _check(x: Sequence[float], y: Sequence[float]) -> None:
    if len(x) != len(y):
        raise ValueError(f"need two sequences of one length, got {len(x)} and {len(y)}")
    if any(math.isnan(v) for v in (*x, *y)):
        raise ValueError("rank statistics are undefined for NaN values; drop them first")


def rankdata(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing the average of the ranks they span (scipy's 'average')."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        average = (start + end) / 2 + 1
        for k in range(start, end + 1):
            ranks[order[k]] = average
        start = end + 1
    return ranks


def _pearson(x: Sequence[float], y: Sequence[float]) -> float:
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return math.nan
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson correlation of the average ranks (exact with ties)."""
    _check(x, y)
    if len(x) < 2:
        return math.nan
    return _pearson(rankdata(x), rankdata(y))


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b: (concordant - discordant) / sqrt((n0 - ties_x) (n0 - ties_y)).

    A pair tied in x (or y) counts in neither numerator term and shrinks that side's
    denominator; a pair tied in both is ignored entirely.
    """
    _check(x, y)
    n = len(x)
    concordant = discordant = ties_x = ties_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx = (x[i] > x[j]) - (x[i] < x[j])  # signs by comparison: safe for +-inf
            dy = (y[i] > y[j]) - (y[i] < y[j])
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif dx == dy:
                concordant += 1
            else:
                discordant += 1
    pairs_x = concordant + discordant + ties_y  # pairs not tied in x
    pairs_y = concordant + discordant + ties_x  # pairs not tied in y
    if pairs_x == 0 or pairs_y == 0:
        return math.nan
    return (concordant - discordant) / math.sqrt(pairs_x * pairs_y)


def top_k_overlap(proxy: Sequence[float], reference: Sequence[float], k: int) -> float:
    """Fraction of the reference's k best that are also among the proxy's k best (higher wins).

    What a search that keeps its top-k candidates cares about. Ties at the cut are broken by
    position (first listed wins), so the result is deterministic; 1.0 is perfect, and a random
    proxy scores k/n on average.
    """
    _check(proxy, reference)
    n = len(proxy)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")

    def best(values: Sequence[float]) -> set[int]:
        return set(sorted(range(n), key=lambda i: (-values[i], i))[:k])

    return len(best(proxy) & best(reference)) / k
