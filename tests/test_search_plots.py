"""Export plots draw what they name: final scores only, a visible Pareto front, integer trials."""

from __future__ import annotations

import math

import optuna
from optuna.trial import TrialState

from coatnet_nas._io import pyplot
from coatnet_nas.search import SearchConfig, export_study, run_search, space_from_dict
from coatnet_nas.search.plots import flops_figure, history_figure, scored_rows
from tests.conftest import tiny_space

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _row(number: int, state: str, accuracy: float | None, flops: int, **extra) -> dict:
    return {
        "number": number,
        "state": state,
        "feasible": True,
        "val_accuracy": accuracy,
        "flops": flops,
        "layout": "C-T",
        "duplicate_of": None,
        **extra,
    }


ROWS = [
    _row(0, "COMPLETE", 0.4, 10_000_000),
    _row(1, "PRUNED", 0.0, 12_000_000),  # pruned at its first evaluation: no final score
    _row(2, "COMPLETE", 0.6, 20_000_000),
    _row(3, "COMPLETE", 0.6, 20_000_000, duplicate_of=2),  # told trial 2's result
    _row(4, "FAIL", None, 30_000_000),
]


def _legend_is_outside(ax) -> bool:
    fig = ax.figure
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    return legend.x0 >= ax.get_window_extent().x1


def test_accuracy_plots_show_final_scores_only():
    done = scored_rows(ROWS)
    assert [r["number"] for r in done] == [0, 2]
    fig = flops_figure(done, left_out=2, budget_flops=40_000_000)
    ax = fig.axes[0]
    drawn = [tuple(p) for c in ax.collections for p in c.get_offsets()]
    assert drawn and all(y > 0 for _, y in drawn)  # no pruned trial at accuracy 0
    front = [line for line in ax.get_lines() if line.get_label().startswith("Pareto front")]
    assert front and front[0].get_marker() == "o" and len(front[0].get_xdata()) == 2
    assert "not shown" in ax.get_title()
    assert _legend_is_outside(ax)
    pyplot().close(fig)


def test_history_has_integer_trial_ticks_and_the_legend_off_the_data():
    fig = history_figure("s", scored_rows(ROWS), left_out=2)
    ax = fig.axes[0]
    fig.canvas.draw()
    assert all(math.isclose(x, round(x)) for x in ax.get_xticks())
    assert _legend_is_outside(ax)
    pyplot().close(fig)


def test_importances_carry_a_caveat_with_few_trials(tmp_path):
    space = space_from_dict(tiny_space())
    config = SearchConfig(space=space, flops=10**9, seed=0, proxy="params")
    study = run_search(
        config,
        f"sqlite:///{tmp_path}/p.db",
        "p",
        trials=4,
        sampler="random",
        heartbeat_interval=None,
        device="cpu",
    )
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) < 10
    export = export_study(study, tmp_path / "out")
    assert any("importances" in n and "noise" in n for n in export.notes) or (
        "importances.png" not in export.files
    )
