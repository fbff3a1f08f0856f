"""Outputs of a comparison: ``runs.csv``, ``summary.csv``, ``layouts.csv`` (per layout:
``fit_loss`` and ``capacity_loss``), ``compare.json`` and ``compare.png``.

The figure follows the paper's Figure 1: one panel per data regime, layouts along the x axis,
final (clean) train loss as bars on the left axis and val accuracy as a line on the right axis,
both with ± std over seeds as error bars.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coatnet_nas._io import (
    atomic_write,
    atomic_write_json,
    ensure_dir,
    json_safe,
    pyplot,
    save_figure,
)
from coatnet_nas.compare.analysis import (
    PaperComparison,
    Ranking,
    Row,
    aggregate,
    compare_with_paper,
    rankings,
)
from coatnet_nas.compare.measures import (
    CSV_COLUMNS,
    LayoutMeasures,
    capacity_ranking,
    layout_measures,
)
from coatnet_nas.compare.runner import CompareRun
from coatnet_nas.units import human

RUN_COLUMNS = (
    "key",
    "kind",
    "layout",
    "regime",
    "fraction",
    "seed",
    "status",
    "params",
    "flops",
    "train_images",
    "val_images",
    "train_loss",
    "train_accuracy",
    "val_accuracy",
    "gap",
    "running_train_loss",
    "capacity_loss",
    "plateaued",
    "image_size",
    "steps",
    "epochs",
    "seconds",
    "images_per_second",
    "device",
)
STATS = ("train_loss", "train_accuracy", "val_accuracy", "gap", "seconds")


@dataclass
class Summary:
    """Everything a report shows: rows per regime, the per-layout measures (fitting speed and
    capacity), the rankings, the paper check, notes."""

    run: CompareRun
    rows: list[Row]
    rankings: dict[str, Ranking]
    paper: dict[str, PaperComparison]
    notes: list[str] = field(default_factory=list)
    measures: list[LayoutMeasures] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    def regime_rows(self, regime: str) -> list[Row]:
        return [r for r in self.rows if r.regime == regime]

    def to_dict(self) -> dict[str, Any]:
        run = self.run
        return json_safe(
            {
                "out": str(run.out_dir),
                "budget_flops": run.budget,
                "config": run.config.to_dict(),
                "data": run.data,
                "regime_sizes": run.regime_sizes,
                "layouts": [e.describe() for e in run.entrants],
                "rows": [r.to_dict() for r in self.rows],
                "measures": [m.to_dict() for m in self.measures],
                "rankings": {k: v.to_dict() for k, v in self.rankings.items()},
                "paper": {k: v.to_dict() for k, v in self.paper.items()},
                "runs": [{k: v for k, v in r.items() if k != "spec"} for r in run.records],
                "capacity_runs": [
                    {k: v for k, v in r.items() if k != "spec"} for r in run.capacity
                ],
                "ran": run.ran,
                "resumed": run.resumed,
                "errors": run.errors,
                "seconds": round(run.seconds, 1),
                "notes": self.notes,
                "files": {k: str(v) for k, v in self.files.items()},
            }
        )


def summarize(run: CompareRun) -> Summary:
    """Aggregate the runs, rank the layouts and check the rankings against the paper."""
    config = run.config
    names = [e.name for e in run.entrants]
    rows = aggregate(run.records, names, config.regimes, run.regime_sizes)
    ranks = rankings(rows, config.regimes)
    measures = layout_measures(rows, run.capacity, names, config.regimes)
    capacity = capacity_ranking(measures)
    if capacity is not None:
        ranks["capacity"] = capacity
    vit = next((e.name for e in run.entrants if e.layout.vit), None)
    paper = {k: compare_with_paper(r, vit) for k, r in ranks.items()}
    return Summary(run, rows, ranks, paper, notes=_notes(run, rows), measures=measures)


def _notes(run: CompareRun, rows: list[Row]) -> list[str]:
    notes = []
    for e in run.entrants:
        if e.flops_ratio < 0.95:
            notes.append(
                f"{e.name} reaches only {e.flops_ratio:.1%} of the budget: width and depth steps "
                "are coarse at this size; compare its numbers with care."
            )
    expected = len(run.entrants) * len(run.config.regimes) * len(run.config.seeds)
    if len(run.records) < expected:
        notes.append(
            f"{len(run.records)} of {expected} runs are finished; run the same command again to "
            "complete the comparison."
        )
    if run.config.capacity.enabled:
        wanted = len(run.entrants) * len(run.config.seeds)
        capped = sum(r.get("status") == "capped" for r in run.capacity)
        diverged = sum(r.get("status") == "diverged" for r in run.capacity)
        if len(run.capacity) < wanted:
            notes.append(
                f"{len(run.capacity)} of {wanted} capacity runs are finished; run the same "
                "command again to complete them."
            )
        if capped:
            notes.append(
                f"{capped} capacity run(s) stopped at the step cap before a plateau: their "
                "capacity_loss is an upper bound; raise the capacity step cap for a tighter one."
            )
        if diverged:
            notes.append(
                f"{diverged} capacity run(s) diverged; they are left out of capacity_loss."
            )
    diverged = sum(r.diverged for r in rows)
    if diverged:
        notes.append(f"{diverged} run(s) diverged; their metrics are left out of the means.")
    base = next((e.spec for e in run.entrants if not e.layout.vit), None)
    if base is not None:
        grids = [f"S{i} {h}x{w}" for i, (h, w) in enumerate(base.resolutions()[1:], 1)]
        vit = next((e for e in run.entrants if e.layout.vit), None)
        tokens = ""
        if vit is not None:
            h, w = vit.spec.resolutions()[-1]
            tokens = f"; {vit.name} tokens {h}x{w}"
        if min(base.resolutions()[-1]) < 4:
            where = ""
            if run.capacity:
                side = run.capacity[0]["image_size"][0]
                where = f" (capacity runs train at {side}px, where every T stage sees >= 4x4)"
            notes.append(
                f"stage grids at {run.config.train_size[0]}px: {', '.join(grids)}{tokens}. "
                "Attention on grids below 4x4 sees little spatial structure, so at this "
                f"resolution late T stages act mostly as per-token MLPs{where}."
            )
    return notes


# --- files -----------------------------------------------------------------------------------
def write_outputs(summary: Summary, out_dir: Path | None = None) -> dict[str, Path]:
    """Write runs.csv, summary.csv, layouts.csv, compare.json and compare.png; return paths."""
    out = ensure_dir(out_dir or summary.run.out_dir, param="out_dir")
    files = {
        "runs.csv": _write_runs(summary, out / "runs.csv"),
        "summary.csv": _write_summary(summary, out / "summary.csv"),
        "layouts.csv": write_csv(
            out / "layouts.csv", list(CSV_COLUMNS), [m.csv_row() for m in summary.measures]
        ),
    }
    if summary.rows:
        files["compare.png"] = plot(summary, out / "compare.png")
    files["compare.json"] = out / "compare.json"
    summary.files = dict(files)
    atomic_write_json(out / "compare.json", summary.to_dict(), param="out_dir")
    return files


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    def write(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)

    return atomic_write(path, write, param="out_dir")


def _write_runs(summary: Summary, path: Path) -> Path:
    records = [*summary.run.records, *summary.run.capacity]
    rows = [[_cell(record, k) for k in RUN_COLUMNS] for record in records]
    return write_csv(path, list(RUN_COLUMNS), rows)


def _cell(record: dict[str, Any], column: str) -> Any:
    if column == "kind":
        return record.get("kind", "fit")
    if column == "image_size" and record.get("image_size"):
        return "x".join(str(v) for v in record["image_size"])
    return record.get(column)


def _write_summary(summary: Summary, path: Path) -> Path:
    ratios = {e.name: e.flops_ratio for e in summary.run.entrants}
    head = [
        "regime",
        "fraction",
        "train_images",
        "layout",
        "params",
        "flops",
        "flops_ratio",
        "runs",
        "diverged",
    ]
    columns = head + [f"{s}_{k}" for s in STATS for k in ("mean", "std")]
    rows = []
    for r in summary.rows:
        values: list[Any] = [
            r.regime,
            r.fraction,
            r.train_images,
            r.layout,
            r.params,
            r.flops,
            round(ratios.get(r.layout, math.nan), 4),
            r.runs,
            r.diverged,
        ]
        for s in STATS:
            stat = getattr(r, s)
            values += [_num(stat.mean), _num(stat.std)]
        rows.append(values)
    return write_csv(path, columns, rows)


def _num(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:.6g}"


def plot(summary: Summary, path: Path) -> Path:
    """The paper-style figure: per regime, train loss bars and val accuracy line per layout."""
    plt = pyplot()
    run = summary.run
    regimes = [r for r in run.config.regimes if summary.regime_rows(r.name)]
    fig, axes = plt.subplots(
        1, len(regimes), figsize=(5.2 * len(regimes), 4.2), squeeze=False, sharey=False
    )
    for ax, regime in zip(axes[0], regimes, strict=True):
        rows = summary.regime_rows(regime.name)
        xs = list(range(len(rows)))
        loss = [r.train_loss for r in rows]
        acc = [r.val_accuracy for r in rows]
        ax.bar(
            xs,
            [s.mean for s in loss],
            yerr=[s.std for s in loss],
            color="#9ecae1",
            edgecolor="#3182bd",
            capsize=3,
            label="train loss (clean)",
        )
        ax.set_ylabel("final train loss")
        ax.set_xticks(xs, [r.layout for r in rows], rotation=20)
        right = ax.twinx()
        right.errorbar(
            xs,
            [s.mean * 100 for s in acc],
            yerr=[s.std * 100 for s in acc],
            color="#d62728",
            marker="o",
            capsize=3,
            label="val accuracy",
        )
        right.set_ylabel("val accuracy (%)")
        n = rows[0].train_images
        ax.set_title(f"{regime.name}: {regime.fraction * 100:g}% of the data ({n:,} images)")
        handles, labels = (
            a + b
            for a, b in zip(
                ax.get_legend_handles_labels(), right.get_legend_handles_labels(), strict=True
            )
        )
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    h, w = run.config.train_size
    seeds = len(run.config.seeds)
    spread = f"mean ± std over {seeds} seeds" if seeds > 1 else "one seed (no spread measured)"
    fig.suptitle(
        f"{run.data.get('name', run.config.dataset)} at {h}x{w}, {human(run.budget)} FLOPs per "
        f"layout, {spread}"
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return save_figure(fig, path, dpi=110, param="out_dir")
