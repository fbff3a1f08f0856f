"""The PNG plots of a study export: optimization history, accuracy vs FLOPs, importances.

Accuracy axes show final scores only: a pruned trial's last intermediate value is not a score
(drawn at 0 or at its early value it misleads), so pruned, failed and over-budget trials are left
out and counted in the title; repeats of an evaluated architecture are left out too (the same
point twice). Trial axes are integers, legends sit outside the data, a named Pareto front is drawn
(markers and steps, visible even with one point), and importances carry a caveat with fewer than
:data:`MIN_FOR_IMPORTANCES` complete trials (fANOVA on a handful of points is mostly noise).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna

from coatnet_nas._io import pyplot, save_figure

__all__ = [
    "MIN_FOR_IMPORTANCES",
    "flops_figure",
    "history_figure",
    "ladder_figure",
    "pareto_front",
    "plots",
    "scored_rows",
]

MIN_FOR_IMPORTANCES = 10


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated in (low cost, high accuracy), sorted by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plots(
    study: optuna.Study,
    rows: list[dict[str, Any]],
    out: Path,
    budget_flops: int | None,
    notes: list[str],
    max_latency_ms: float | None = None,
) -> dict[str, Path]:
    """Write the plots into ``out`` (accuracy vs latency when trials have a predicted latency);
    skipped ones get a line in ``notes``."""
    scored = scored_rows(rows)
    done = [r for r in scored if not r.get("rung") and not r.get("seed")]  # rung 0, sampled
    left_out = sum(r["state"] in ("PRUNED", "FAIL") for r in rows)
    files = {
        "history.png": _save(history_figure(study.study_name, done, left_out), out / "history.png"),
        "accuracy_vs_flops.png": _save(
            flops_figure(done, left_out, budget_flops), out / "accuracy_vs_flops.png"
        ),
    }
    if any(r.get("latency_ms") is not None for r in rows):
        figure = cost_figure(
            done,
            left_out,
            "latency_ms",
            1.0,
            "predicted latency (ms) at target resolution",
            max_latency_ms,
        )
        files["accuracy_vs_latency.png"] = _save(figure, out / "accuracy_vs_latency.png")
    for rung in sorted({r["rung"] for r in scored if r.get("rung")}):
        on = [r for r in scored if r.get("rung") == rung]
        figure = cost_figure(
            on,
            0,
            "flops",
            1e-9,
            "GFLOPs (MACs) at target resolution",
            budget_flops / 1e9 if budget_flops else None,
        )
        figure.axes[0].set_title(f"rung {rung}: accuracy vs flops (every seed)")
        files[f"accuracy_vs_flops_rung{rung}.png"] = _save(
            figure, out / f"accuracy_vs_flops_rung{rung}.png"
        )
    if any(r.get("rung") for r in scored):
        files["rungs.png"] = _save(ladder_figure(scored), out / "rungs.png")
    importances = _importances(study, len(done), out, notes)
    if importances is not None:
        files["importances.png"] = importances
    return files


def scored_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with a final score to draw: feasible COMPLETE trials, each architecture once."""
    return [
        r
        for r in rows
        if r["state"] == "COMPLETE"
        and r["feasible"]
        and r["val_accuracy"] is not None
        and r.get("duplicate_of") is None
    ]


def ladder_figure(scored: list[dict[str, Any]]) -> Any:
    """Each promoted candidate's mean accuracy per rung (lines), every seed as a dot; baselines
    dashed. A line that crosses others is the proxy changing its mind."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    by_arch: dict[str, dict[int, list[float]]] = {}
    label: dict[str, str] = {}
    for r in scored:
        arch = f"{r['layout']} {r['depths']} {r['widths']}"
        by_arch.setdefault(arch, {}).setdefault(r.get("rung") or 0, []).append(r["val_accuracy"])
        if r.get("yardstick"):
            label[arch] = str(r["yardstick"])
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, (arch, rungs) in enumerate(sorted(by_arch.items())):
        if max(rungs) == 0:
            continue  # never promoted
        xs = sorted(rungs)
        color = f"C{k % 10}"
        means = [sum(rungs[x]) / len(rungs[x]) for x in xs]
        style = "--" if arch in label else "-"
        ax.plot(xs, means, color=color, ls=style, lw=1, label=label.get(arch, arch)[:40])
        for x in xs:
            ax.scatter([x] * len(rungs[x]), rungs[x], s=10, color=color)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("rung")
    ax.set_ylabel("val accuracy (rung's own recipe)")
    ax.set_title("promotion ladder: promoted candidates per rung")
    _legend_outside(ax)
    return fig


def _legend_outside(ax: Any) -> None:
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def history_figure(name: str, done: list[dict], left_out: int) -> Any:
    """Accuracy per trial (final scores only) and the best so far."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 4))
    best, xs, ys, best_line = float("-inf"), [], [], []
    for r in done:
        best = max(best, r["val_accuracy"])
        xs.append(r["number"])
        ys.append(r["val_accuracy"])
        best_line.append(best)
    ax.scatter(xs, ys, s=18, label="trial (feasible, complete)")
    if xs:
        ax.step(xs, best_line, where="post", color="C3", label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial number")
    ax.set_ylabel("proxy val accuracy")
    ax.set_title(f"{name}: optimization history ({left_out} pruned/failed/over budget not shown)")
    _legend_outside(ax)
    return fig


def flops_figure(done: list[dict], left_out: int, budget_flops: int | None) -> Any:
    """Accuracy vs FLOPs by layout, the Pareto front and the budget line."""
    limit = budget_flops / 1e9 if budget_flops else None
    return cost_figure(done, left_out, "flops", 1e-9, "GFLOPs (MACs) at target resolution", limit)


def cost_figure(
    done: list[dict], left_out: int, column: str, scale: float, xlabel: str, limit: float | None
) -> Any:
    """Accuracy vs one cost column (times ``scale``) by layout, the Pareto front and the limit."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    done = [r for r in done if r.get(column) is not None]
    layouts = sorted({r["layout"] for r in done})
    for k, layout in enumerate(layouts):
        pts = [r for r in done if r["layout"] == layout]
        ax.scatter(
            [r[column] * scale for r in pts],
            [r["val_accuracy"] for r in pts],
            s=22,
            color=f"C{k % 10}",
            label=layout,
        )
    points = [(r[column] * scale, r["val_accuracy"]) for r in done]
    front = [points[i] for i in pareto_front(points)]
    if front:
        ax.plot(
            [p[0] for p in front],
            [p[1] for p in front],
            drawstyle="steps-post",
            color="k",
            lw=1,
            marker="o",
            markersize=9,
            markerfacecolor="none",
            label=f"Pareto front ({len(front)})",
        )
    if limit:
        ax.axvline(limit, color="C3", ls="--", lw=1, label="budget")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("proxy val accuracy")
    ax.set_title(f"accuracy vs {column} ({left_out} pruned/failed/over budget not shown)")
    if layouts or front or limit:
        _legend_outside(ax)
    return fig


def _importances(study: optuna.Study, complete: int, out: Path, notes: list[str]) -> Path | None:
    """fANOVA importances (Optuna's default evaluator), with a caveat on few trials."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from optuna.visualization.matplotlib import plot_param_importances

            ax = plot_param_importances(study, target=lambda t: t.values[0], target_name="accuracy")
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        notes.append(f"importances.png skipped: {exc}")
        return None
    if complete < MIN_FOR_IMPORTANCES:
        caveat = (
            f"only {complete} complete trials (< {MIN_FOR_IMPORTANCES}): importances are mostly "
            "noise"
        )
        ax.figure.text(0.01, 0.01, caveat, fontsize=8, color="C3")
        notes.append(f"importances.png: {caveat}")
    return _save(ax.figure, out / "importances.png")


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    return save_figure(fig, path, dpi=120, param="out_dir")
