"""Mean ± std per (regime, layout), the rankings, and how they line up with the paper's.

* Generalization: val accuracy in the regime with the least data (higher is better); the
  train-minus-val accuracy gap is reported beside it.
* Fitting speed: clean train loss after the fixed budget in the regime with the most data
  (lower is better), checked against the paper's *capacity* ordering, which it only approximates.
* Capacity (:mod:`~coatnet_nas.compare.measures`): the lowest clean train loss at a plateau.

Two layouts are called a tie (``≈``) when their means differ by no more than the spread one would
expect between single runs, ``sqrt(std_a² + std_b²)`` over seeds; otherwise ``>`` orders them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations, pairwise
from typing import Any

from coatnet_nas.compare.config import Regime
from coatnet_nas.proxies.rank import spearman

# Dai et al., 2021, Section 3.2 (Figure 1): ≈ about equal, ≥ slightly better, > / ≫ clearly better.
PAPER_RANKINGS = {
    "generalization": "C-C-C-C ≈ C-C-C-T ≥ C-C-T-T > C-T-T-T ≫ ViT",
    "capacity": "C-C-T-T ≈ C-T-T-T > ViT > C-C-C-T > C-C-C-C",
}
RELATIONS = ("≈", "≥", ">", "≫")
# which paper ranking a measured ranking is held to: a proxy score predicts accuracy on held-out
# data, so a proxy's ranking (``compare --proxy``) is held to the paper's generalization one
PAPER_CLAIM = {"fitting_speed": "capacity", "proxy": "generalization"}


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation over seeds (std 0 for a single run)."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Stat:
        xs = [float(v) for v in values if v is not None and math.isfinite(v)]
        if not xs:
            return cls(math.nan, math.nan, 0)
        return cls(statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0, len(xs))

    def fmt(self, digits: int = 3, scale: float = 1.0) -> str:
        """``mean ± std``; a single run has no spread to show, so just its value."""
        if self.n == 0:
            return "-"
        if self.n == 1:
            return f"{self.mean * scale:.{digits}f}"
        return f"{self.mean * scale:.{digits}f} ± {self.std * scale:.{digits}f}"

    def to_dict(self) -> dict[str, Any]:
        finite = self.n > 0
        return {
            "mean": self.mean if finite else None,
            "std": self.std if finite else None,
            "n": self.n,
        }


@dataclass(frozen=True)
class Row:
    """One layout in one regime, aggregated over seeds."""

    regime: str
    fraction: float
    train_images: int
    layout: str
    params: int
    flops: int
    runs: int
    diverged: int
    train_loss: Stat
    train_accuracy: Stat
    val_accuracy: Stat
    gap: Stat
    seconds: Stat

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            out[key] = value.to_dict() if isinstance(value, Stat) else value
        return out


def aggregate(
    records: Sequence[dict[str, Any]],
    layouts: Sequence[str],
    regimes: Sequence[Regime],
    regime_sizes: dict[str, int] | None = None,
) -> list[Row]:
    """Rows in regime order, layouts in the given order; layouts without runs are skipped."""
    rows = []
    for regime in regimes:
        for layout in layouts:
            runs = [r for r in records if r["layout"] == layout and r["regime"] == regime.name]
            if not runs:
                continue
            rows.append(
                Row(
                    regime=regime.name,
                    fraction=regime.fraction,
                    train_images=(regime_sizes or {}).get(regime.name, runs[0]["train_images"]),
                    layout=layout,
                    params=runs[0]["params"],
                    flops=runs[0]["flops"],
                    runs=len(runs),
                    diverged=sum(r["status"] == "diverged" for r in runs),
                    train_loss=Stat.of([r["train_loss"] for r in runs]),
                    train_accuracy=Stat.of([r["train_accuracy"] for r in runs]),
                    val_accuracy=Stat.of([r["val_accuracy"] for r in runs]),
                    gap=Stat.of([r["gap"] for r in runs]),
                    seconds=Stat.of([r["seconds"] for r in runs]),
                )
            )
    return rows


def relation(a: Stat, b: Stat, higher_is_better: bool) -> str:
    """``>`` if ``a`` is better than ``b`` beyond seed noise, ``<`` if worse, else ``≈``."""
    if a.n == 0 or b.n == 0:
        return "?"
    diff = a.mean - b.mean if higher_is_better else b.mean - a.mean
    if abs(diff) <= math.hypot(a.std, b.std):
        return "≈"
    return ">" if diff > 0 else "<"


@dataclass
class Ranking:
    """Layouts best first; neighbours are related by ``≈`` (a tie) or ``>``."""

    name: str
    regime: str
    metric: str
    higher_is_better: bool
    order: list[tuple[str, Stat]]

    @property
    def relations(self) -> list[str]:
        return [
            "≈" if relation(a, b, self.higher_is_better) == "≈" else ">"
            for (_, a), (_, b) in pairwise(self.order)
        ]

    def text(self) -> str:
        if not self.order:
            return "-"
        parts = [self.order[0][0]]
        for (layout, _), rel in zip(self.order[1:], self.relations, strict=True):
            parts += [rel, layout]
        return " ".join(parts)

    def stat(self, layout: str) -> Stat | None:
        return next((s for name, s in self.order if name == layout), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "regime": self.regime,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "text": self.text(),
            "order": [{"layout": n, **s.to_dict()} for n, s in self.order],
        }


def rank(rows: Sequence[Row], name: str, regime: str, metric: str, higher: bool) -> Ranking:
    """Order the layouts of one regime by ``metric`` (means over seeds)."""
    stats = [(r.layout, getattr(r, metric)) for r in rows if r.regime == regime]
    stats = [(n, s) for n, s in stats if s.n > 0]
    stats.sort(key=lambda item: -item[1].mean if higher else item[1].mean)
    return Ranking(name, regime, metric, higher, stats)


def rankings(rows: Sequence[Row], regimes: Sequence[Regime]) -> dict[str, Ranking]:
    """Generalization in the scarcest regime, fitting speed in the most plentiful one."""
    small = min(regimes, key=lambda r: r.fraction)
    large = max(regimes, key=lambda r: r.fraction)
    return {
        "generalization": rank(rows, "generalization", small.name, "val_accuracy", True),
        "fitting_speed": rank(rows, "fitting_speed", large.name, "train_loss", False),
    }


# --- the paper --------------------------------------------------------------------------------
def parse_chain(text: str) -> tuple[list[str], list[str]]:
    """``"A ≈ B > C"`` -> (["A", "B", "C"], ["≈", ">"])."""
    tokens = text.split()
    return tokens[0::2], tokens[1::2]


def paper_relation(chain: str, a: str, b: str) -> str | None:
    """The paper's claim about ``a`` vs ``b`` (``a`` listed first): ``≈``, ``≥`` or ``>``."""
    names, rels = parse_chain(chain)
    if a not in names or b not in names:
        return None
    i, j = sorted((names.index(a), names.index(b)))
    between = rels[i:j]
    if any(r in (">", "≫") for r in between):
        return ">"
    return "≥" if "≥" in between else "≈"


@dataclass(frozen=True)
class PairCheck:
    """One pair of layouts: what the paper says, what was measured, and the verdict."""

    better: str  # the paper's better (or first-listed) layout
    other: str
    paper: str
    measured: str
    verdict: str  # agree | tie (paper orders them, measurement does not) | reversed | ordered

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


@dataclass
class PaperComparison:
    """``rho``: Spearman's rho between the measured means and the paper's order (layouts the
    paper calls ``≈`` tied), positive when they agree; None with fewer than 3 layouts in common
    or no spread."""

    name: str
    paper: str
    measured: str
    pairs: list[PairCheck] = field(default_factory=list)
    rho: float | None = None

    def counts(self) -> dict[str, int]:
        out = {"agree": 0, "tie": 0, "ordered": 0, "reversed": 0}
        for p in self.pairs:
            out[p.verdict] += 1
        return out

    def sentence(self) -> str:
        """The verdicts in plain words, e.g. "the paper's ordering holds for 3 of 4 pairs"."""
        c = self.counts()
        n = len(self.pairs)
        if not n:
            return f"{self.name}: no layouts in common with the paper's ranking."
        parts = [f"the paper's ordering holds for {c['agree']} of {_pairs(n)}"]
        if c["tie"]:
            parts.append(
                f"for {_pairs(c['tie'])} the paper finds a difference but this run found none "
                "beyond the seed spread"
            )
        if c["ordered"]:
            parts.append(
                f"for {_pairs(c['ordered'])} the paper reports no difference but this run found one"
            )
        if c["reversed"]:
            flipped = [p for p in self.pairs if p.verdict == "reversed"]
            rev = ", ".join(f"{p.other} > {p.better}" for p in flipped)
            parts.append(f"{_pairs(c['reversed'])} came out the other way round ({rev})")
        return f"{self.name}: " + "; ".join(parts) + "."

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "paper": self.paper,
            "measured": self.measured,
            "counts": self.counts(),
            "rho": self.rho,
            "sentence": self.sentence(),
            "pairs": [p.to_dict() for p in self.pairs],
        }


def _pairs(n: int) -> str:
    return f"{n} pair" if n == 1 else f"{n} pairs"


def _verdict(paper: str, measured: str) -> str:
    if paper == "≈":
        return "agree" if measured == "≈" else "ordered"
    if measured == "<":
        return "reversed"
    if measured == "≈" and paper == ">":
        return "tie"
    return "agree"


def compare_with_paper(ranking: Ranking, vit_name: str | None = None) -> PaperComparison:
    """Check every pair of measured layouts that the paper's ranking also orders.

    ``vit_name`` is the measured ViT layout (``ViT`` or ``ViT/8``) standing for ViT_REL.
    """
    chain = PAPER_RANKINGS[PAPER_CLAIM.get(ranking.name, ranking.name)]
    names = {layout: layout for layout, _ in ranking.order}
    if vit_name is not None and vit_name in names:
        names[vit_name] = "ViT"
    paper_names, _ = parse_chain(chain)
    measured = [m for m in names if names[m] in paper_names]
    measured.sort(key=lambda m: paper_names.index(names[m]))
    pairs = []
    for a, b in combinations(measured, 2):  # a is listed first (better or equal) by the paper
        claim = paper_relation(chain, names[a], names[b])
        sa, sb = ranking.stat(a), ranking.stat(b)
        if claim is None or sa is None or sb is None:
            continue
        got = relation(sa, sb, ranking.higher_is_better)
        pairs.append(PairCheck(a, b, claim, got, _verdict(claim, got)))
    rho = _rho(ranking, chain, {m: names[m] for m in measured})
    return PaperComparison(ranking.name, chain, ranking.text(), pairs, rho)


def paper_levels(chain: str) -> dict[str, int]:
    """Each layout's level in the paper's chain (0 best); layouts joined by ``≈`` share one."""
    names, rels = parse_chain(chain)
    levels = [0]
    for rel in rels:
        levels.append(levels[-1] + (rel != "≈"))
    return dict(zip(names, levels, strict=True))


def _rho(ranking: Ranking, chain: str, names: dict[str, str]) -> float | None:
    levels = paper_levels(chain)
    sign = 1.0 if ranking.higher_is_better else -1.0
    pairs = [(sign * s.mean, -levels[p]) for m, p in names.items() if (s := ranking.stat(m))]
    if len(pairs) < 3:
        return None
    rho = spearman([a for a, _ in pairs], [b for _, b in pairs])
    return None if math.isnan(rho) else rho
