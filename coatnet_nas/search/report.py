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
    "rung",
    "seed",
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
    ladder: dict[str, Any] | None = None  # finalists, baselines, verdicts (finalists.summarize)


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
                "rung": a.get("rung", 0),
                "seed": a.get("seed", 0),
                "feasible": _feasible(t),
                "duplicate_of": a.get("duplicate_of"),
                "yardstick": a.get("yardstick"),
                "reason": a.get("reason", ""),
            }
        )
    return rows


def best_trial(study: optuna.Study, config: Any = None) -> FrozenTrial | None:
    """The validated winner of a ladder study (best mean on the top rung reached); otherwise the
    highest proxy accuracy among feasible COMPLETE trials (multi-objective: on the front)."""
    config = config if config is not None else _config_of(study)
    if config is not None and config.ladder:
        from coatnet_nas.search.finalists import summarize

        winner = summarize(study.get_trials(deepcopy=False), config).winner_trial
        if winner is not None:
            return study.get_trials(deepcopy=False)[winner]
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
    config: Any = None,
) -> Export:
    """Write best.yaml, trials.csv and the PNG plots into ``out_dir`` (each file atomically).

    With a promotion ladder (``config``, default: the one stored in the study) ``best.yaml`` is
    the validated winner: the best mean on the top rung reached, not a single proxy score.
    """
    out = ensure_dir(out_dir, param="out_dir")
    rows = trial_rows(study)
    export = Export(out, rows, None)
    export.files["trials.csv"] = atomic_write_text(
        out / "trials.csv", _csv_text(rows), param="out_dir"
    )
    config = config if config is not None else _config_of(study)
    trial, header = best_trial(study, config), f"best trial of study {study.study_name!r}"
    if config is not None and not config.training_free and not config.multi_objective:
        from coatnet_nas.search.finalists import summarize

        summary = summarize(study.get_trials(deepcopy=False), config)
        export.ladder = summary.as_dict()
        if config.ladder and summary.winner_trial is not None:
            top = summary.finalists[0]
            shown = f"{top['mean']:.4f}" + (
                f" ± {top['half_width']:.4f}" if top["half_width"] is not None else ""
            )
            header = (
                f"validated winner of study {study.study_name!r}: rung {top['rung']} of "
                f"{summary.rungs - 1}, mean val accuracy {shown} over {top['seeds']} seed(s)"
            )
            if not summary.complete:
                export.notes.append(
                    f"the ladder is not complete: the winner is validated on rung "
                    f"{top['rung']}; run the same command again to finish it"
                )
    if trial is not None:
        spec = spec_of(trial).evolve(name=f"{study.study_name}-best")
        path = out / "best.yaml"
        text = f"# {header}; rebuild with: coatnet build {path}\n" + spec.to_yaml()
        export.files["best.yaml"] = atomic_write_text(path, text, param="out_dir")
        export.best = next(r for r in rows if r["number"] == trial.number)
    else:
        export.notes.append("no feasible COMPLETE trial yet: best.yaml not written")
    export.files.update(plots(study, rows, out, budget_flops, export.notes, max_latency_ms))
    return export


def _config_of(study: optuna.Study) -> Any:
    """The study's stored search config, or ``None`` (a study made by other code)."""
    from coatnet_nas.errors import CoatnetError
    from coatnet_nas.search.opening import CONFIG_ATTR, _stored_config

    if study.user_attrs.get(CONFIG_ATTR) is None:
        return None
    try:
        return _stored_config(study)
    except CoatnetError:
        return None


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
