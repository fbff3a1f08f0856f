"""Study exports: ``best.yaml``, ``trials.csv``, PNG plots and leaderboard rows.

Works on any study created by ``coatnet search`` (each trial carries its normalized spec), so
``coatnet report`` can regenerate everything from the storage alone.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from coatnet_nas._io import atomic_write_text, ensure_dir
from coatnet_nas.search.plots import plots
from coatnet_nas.spec import ModelSpec, spec_from_dict

CSV_COLUMNS = (
    "number",
    "state",
    "status",
    "layout",
    "depths",
    "widths",
    "params",
    "flops",
    "latency_ms",
    "val_accuracy",
    "best_val_accuracy",
    "train_loss",
    "seconds",
    "feasible",
    "duplicate_of",
    "yardstick",
    "reason",
)


@dataclass
class Export:
    out_dir: Path
    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    files: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _feasible(t: FrozenTrial) -> bool:
    return all(v <= 0 for v in t.constraints.values())


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One flat dict per trial (CSV columns), in trial-number order."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        accuracy = (
            t.values[0] if t.state == TrialState.COMPLETE and t.values else a.get("val_accuracy")
        )
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                # a trial without a TrialStatus (running, or made by other code) shows its state
                "status": a.get("status", t.state.name.lower()),
                "layout": a.get("layout", t.params.get("layout", "")),
                "depths": "-".join(map(str, a.get("depths", []))),
                "widths": "-".join(map(str, a.get("widths", []))),
                "params": a.get("params"),
                "flops": a.get("flops"),
                "latency_ms": a.get("latency_ms"),
                "val_accuracy": accuracy,
                "best_val_accuracy": a.get("best_val_accuracy"),
                "train_loss": a.get("train_loss"),
                "seconds": a.get("seconds"),
                "feasible": _feasible(t),
                "duplicate_of": a.get("duplicate_of"),
                "yardstick": a.get("yardstick"),
                "reason": a.get("reason", ""),
            }
        )
    return rows


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """Highest proxy accuracy among feasible COMPLETE trials (multi-objective: on the front)."""
    done = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if _feasible(t)
    ]
    if len(study.directions) > 1:
        front = {t.number for t in study.best_trials}
        done = [t for t in done if t.number in front] or done
    return max(done, key=lambda t: (t.values[0], -t.user_attrs.get("flops", 0)), default=None)


def spec_of(trial: FrozenTrial) -> ModelSpec:
    """The normalized target spec a trial recorded (explicit YAML form)."""
    return spec_from_dict(trial.user_attrs["spec"], source=f"trial {trial.number}")


def best_spec(study: optuna.Study) -> ModelSpec | None:
    trial = best_trial(study)
    return None if trial is None else spec_of(trial).evolve(name=f"{study.study_name}-best")


def export_study(
    study: optuna.Study,
    out_dir: str | Path,
    budget_flops: int | None = None,
    max_latency_ms: float | None = None,
) -> Export:
    """Write best.yaml, trials.csv and the PNG plots into ``out_dir`` (each file atomically)."""
    out = ensure_dir(out_dir, param="out_dir")
    rows = trial_rows(study)
    export = Export(out, rows, None)
    export.files["trials.csv"] = atomic_write_text(
        out / "trials.csv", _csv_text(rows), param="out_dir"
    )
    spec = best_spec(study)
    if spec is not None:
        path = out / "best.yaml"
        header = f"# best trial of study {study.study_name!r}; rebuild with: coatnet build {path}\n"
        text = header + spec.to_yaml()
        export.files["best.yaml"] = atomic_write_text(path, text, param="out_dir")
        trial = best_trial(study)
        export.best = next(r for r in rows if r["number"] == trial.number)
    else:
        export.notes.append("no feasible COMPLETE trial yet: best.yaml not written")
    export.files.update(plots(study, rows, out, budget_flops, export.notes, max_latency_ms))
    return export


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
