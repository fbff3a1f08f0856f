"""The two per-layout loss measures side by side: fitting speed and capacity.

``fit_loss`` is the clean train loss after the comparison's fixed budget in its largest regime
(how fast a layout starts to fit); ``capacity_loss`` is the lowest clean train loss it reached
when trained to a plateau on a fixed training set (how low it can drive the loss). Both are
lower-is-better and both are held to the paper's capacity ordering.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from coatnet_nas.compare.analysis import Ranking, Row, Stat, rank
from coatnet_nas.compare.config import Regime

CSV_COLUMNS = (
    "layout",
    "params",
    "fit_loss",
    "fit_loss_std",
    "fit_runs",
    "capacity_loss",
    "capacity_loss_std",
    "capacity_runs",
    "capacity_plateaued",
    "capacity_steps",
    "capacity_params",
    "capacity_image_size",
)


@dataclass(frozen=True)
class LayoutMeasures:
    """One layout: its fitting speed (largest regime) and its capacity, over seeds."""

    layout: str
    regime: str  # the largest regime: fit_loss is read there, the capacity set drawn from it
    params: int | None
    fit_loss: Stat
    capacity_loss: Stat
    capacity_runs: int
    capacity_plateaued: int
    capacity_steps: Stat
    capacity_params: int | None
    capacity_image_size: int | None

    def to_dict(self) -> dict[str, Any]:
        return {k: v.to_dict() if isinstance(v, Stat) else v for k, v in self.__dict__.items()}

    def csv_row(self) -> list[Any]:
        def num(value: float) -> Any:
            return "" if value != value else f"{value:.6g}"  # NaN (no runs): empty

        return [
            self.layout,
            self.params,
            num(self.fit_loss.mean),
            num(self.fit_loss.std),
            self.fit_loss.n,
            num(self.capacity_loss.mean),
            num(self.capacity_loss.std),
            self.capacity_runs,
            self.capacity_plateaued,
            num(self.capacity_steps.mean),
            self.capacity_params,
            self.capacity_image_size,
        ]


def layout_measures(
    rows: Sequence[Row],
    capacity: Sequence[dict[str, Any]],
    layouts: Sequence[str],
    regimes: Sequence[Regime],
) -> list[LayoutMeasures]:
    """Per layout (given order): ``fit_loss`` from the largest regime's rows, ``capacity_loss``
    from the capacity runs; layouts with neither are skipped."""
    large = max(regimes, key=lambda r: r.fraction).name
    out = []
    for layout in layouts:
        row = next((r for r in rows if r.layout == layout and r.regime == large), None)
        runs = [r for r in capacity if r["layout"] == layout]
        if row is None and not runs:
            continue
        out.append(
            LayoutMeasures(
                layout=layout,
                regime=large,
                params=row.params if row else None,
                fit_loss=row.train_loss if row else Stat.of([]),
                capacity_loss=Stat.of([r.get("capacity_loss") for r in runs]),
                capacity_runs=len(runs),
                capacity_plateaued=sum(bool(r.get("plateaued")) for r in runs),
                capacity_steps=Stat.of([r.get("steps") for r in runs]),
                capacity_params=runs[0].get("params") if runs else None,
                capacity_image_size=(runs[0].get("image_size") or [None])[0] if runs else None,
            )
        )
    return out


def capacity_ranking(measures: Sequence[LayoutMeasures]) -> Ranking | None:
    """Layouts by ``capacity_loss`` (lower first); None without capacity runs."""
    if not any(m.capacity_runs for m in measures):
        return None
    regime = measures[0].regime
    return rank(measures, "capacity", regime, "capacity_loss", False)  # type: ignore[arg-type]
