"""``coatnet search``, ``coatnet worker`` and ``coatnet report``: Optuna studies from the shell.

(Over ~300 lines: three commands over one study, sharing their option help texts.)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import typer
from rich.live import Live

from coatnet_nas.cli import search_view
from coatnet_nas.cli.app import app, console
from coatnet_nas.cli.options import DataDir, Device, MemoryCap, ProxyDataset, check_memory_cap
from coatnet_nas.errors import CoatnetError
from coatnet_nas.search.storage import DEFAULT_STORAGE, safe_dir_name
from coatnet_nas.search.strategies import Pruner, Sampler
from coatnet_nas.units import parse_flops, parse_latency, parse_params


def parse_duration(text: str | None) -> float | None:
    """``90``, ``90s``, ``30m``, ``1.5h`` -> seconds."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", text.lower())
    if not match or float(match.group(1)) <= 0:
        raise CoatnetError(f"--timeout: expected a duration like 90s, 30m or 1.5h, got {text!r}.")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


STORAGE_HELP = "SQLAlchemy URL of the study storage, e.g. postgresql://user@host/db."
OUT_HELP = "Output folder for best.yaml, trials.csv and plots (default: runs/<study>)."
TIMEOUT_HELP = "Stop starting trials after this long, e.g. 90s, 30m or 1.5h."
HEARTBEAT_HELP = (
    "Heartbeat interval in seconds (>= 1); a trial silent for 2x is retried by another machine's "
    "worker (on this machine a dead process's trial is retried at once)."
)
WORKER_STRATEGY = " (default: the one the study was created with)"
SAMPLER_HELP = "How candidates are proposed (tpe becomes nsga2 with several objectives)."
PRUNER_HELP = "How proxy trainings are stopped early (multi-objective studies never prune)."


def _table_json(path: Path | None) -> dict | None:
    """The latency table's JSON (stored in the study), refused in one line if it is not one."""
    if path is None:
        return None
    from coatnet_nas.latency import LatencyTable

    return LatencyTable.load(path, param="latency_table").model_dump(mode="json")


@app.command()
def search(
    budget: str | None = typer.Option(
        None,
        "--budget",
        metavar="FLOPS",
        help="FLOPs budget at the target size, e.g. 4GFLOPs (default: the space's budget).",
    ),
    max_params: str | None = typer.Option(
        None,
        "--max-params",
        metavar="PARAMS",
        help="Parameter budget at the target size, e.g. 30M (default: the space's budget).",
    ),
    max_latency: str | None = typer.Option(
        None,
        "--max-latency",
        metavar="TIME",
        help="Latency limit at the target size, e.g. 20ms, predicted from --table before any "
        "training.",
    ),
    table: Path | None = typer.Option(
        None,
        "--table",
        metavar="PATH",
        help="Latency table from 'coatnet latency table' for the device the model will run on "
        "(for --max-latency or --objective accuracy,latency).",
    ),
    space_path: Path | None = typer.Option(
        None, "--space", metavar="PATH", help="Search-space YAML (default: the bundled one)."
    ),
    dataset: ProxyDataset = None,
    memory_cap: MemoryCap = None,
    data_dir: DataDir = None,
    trials: int | None = typer.Option(
        None,
        "--trials",
        metavar="N",
        help="New architectures this run evaluates (default 10; over-budget draws and repeats "
        "of an evaluated architecture do not count).",
    ),
    study_trials: int | None = typer.Option(
        None,
        "--study-trials",
        metavar="N",
        help="Stop once the study holds N evaluated architectures (from any process).",
    ),
    enqueue: list[Path] = typer.Option(
        [],
        "--enqueue",
        metavar="SPEC",
        help="Evaluate this spec first as a yardstick, e.g. specs/coatnet0.yaml (repeatable).",
    ),
    baseline: list[str] = typer.Option(
        [],
        "--baseline",
        metavar="NAME",
        help="A paper model fitted to the budget that goes through every rung as a yardstick: "
        "coatnet0 (repeatable).",
    ),
    rungs: int | None = typer.Option(
        None,
        "--rungs",
        metavar="N",
        help="Use the first N rungs of the space's promotion ladder (1: the proxy alone, no "
        "re-training of finalists; default: all).",
    ),
    timeout: str | None = typer.Option(None, "--timeout", metavar="DURATION", help=TIMEOUT_HELP),
    storage: str = typer.Option(DEFAULT_STORAGE, "--storage", metavar="URL", help=STORAGE_HELP),
    study: str | None = typer.Option(
        None,
        "--study",
        metavar="NAME",
        help="Study to create or resume (default: named after space, budget and objectives).",
    ),
    workers: int = typer.Option(
        1, "--workers", metavar="N", help="Local worker processes (they share the CPU cores)."
    ),
    sampler: Sampler = typer.Option(Sampler.TPE, "--sampler", help=SAMPLER_HELP),
    pruner: Pruner = typer.Option(Pruner.HYPERBAND, "--pruner", help=PRUNER_HELP),
    objective: str = typer.Option(
        "accuracy",
        "--objective",
        metavar="NAMES",
        help="accuracy, or accuracy then costs to minimize, e.g. accuracy,flops, "
        "accuracy,params or accuracy,latency (with --table).",
    ),
    seed: int = typer.Option(
        0,
        "--seed",
        metavar="N",
        help="One integer seeding the data split, model init and the sampler (each run and "
        "worker draws its own sampler seed from it and the study's size, so a resumed run "
        "proposes new points).",
    ),
    device: Device = "auto",
    proxy_epochs: float | None = typer.Option(
        None, "--proxy-epochs", metavar="N", help="Proxy training epochs (default: the space's)."
    ),
    subset: float | None = typer.Option(
        None,
        "--subset",
        metavar="FRACTION",
        help="Fraction of the proxy data set used (default: the space's).",
    ),
    proxy: str = typer.Option(
        "train",
        "--proxy",
        metavar="NAME",
        help="train (proxy recipe) or a training-free score: naswot, synflow, snip, grad_norm, "
        "jacob_cov, params, flops (seconds per trial; check it first with coatnet proxy-check).",
    ),
    out: Path | None = typer.Option(None, "--out", metavar="PATH", help=OUT_HELP),
    heartbeat: int = typer.Option(30, "--heartbeat", metavar="SECONDS", help=HEARTBEAT_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary at the end."),
) -> None:
    """Search layouts, depths and widths under a budget; scores are proxy-trained accuracies,
    or a training-free score with --proxy."""
    import optuna

    from coatnet_nas.search import (
        SearchConfig,
        default_study_name,
        export_study,
        load_space,
        run_search,
    )
    from coatnet_nas.search.warmstart import fitted_baseline

    space = load_space(space_path).with_proxy(
        dataset=dataset,
        data_dir=str(data_dir) if data_dir is not None else None,
        epochs=proxy_epochs,
        subset=subset,
    )
    if rungs is not None:
        space = space.with_rungs(rungs)
    flops = parse_flops(budget, what="--budget") if budget is not None else space.budget.flops
    params = (
        parse_params(max_params, what="--max-params")
        if max_params is not None
        else space.budget.params
    )
    latency_s = parse_latency(max_latency, what="--max-latency") if max_latency else None
    if flops is None and params is None and latency_s is None:
        raise CoatnetError(
            "a search needs a budget: pass --budget (FLOPs), --max-params (parameters) and/or "
            "--max-latency with --table, or give the search space a budget: section."
        )
    check_memory_cap(memory_cap)
    if memory_cap is not None:  # read by the data layer here and in every worker process
        from coatnet_nas.data.mapped import CAP_ENV  # torch-heavy: only when asked for

        os.environ[CAP_ENV] = memory_cap
    config = SearchConfig(
        space=space,
        flops=flops,
        params=params,
        objectives=tuple(o.strip() for o in objective.split(",") if o.strip()),
        seed=seed,
        proxy=proxy.strip(),
        max_latency=latency_s,
        latency_table=_table_json(table),
    )
    name = study or default_study_name(config)
    if study is None and config.training_free:  # keep training-free studies apart by default
        name += "-" + re.sub(r"[^A-Za-z0-9._]+", "-", config.proxy).strip("-")
    yardsticks = [str(p) for p in enqueue]
    yardsticks += [fitted_baseline(b, space, flops, params) for b in baseline]
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    live = Live(console=console, refresh_per_second=4, transient=False) if not json_out else None
    notes: list[str] = []

    def show(progress) -> None:
        if live is not None:
            live.update(search_view.progress_view(progress, name))

    if live is not None:
        live.start()
    try:
        result = run_search(
            config,
            storage_url=storage,
            study_name=name,
            trials=trials if trials is not None or study_trials is not None else 10,
            study_trials=study_trials,
            timeout=parse_duration(timeout),
            workers=workers,
            sampler=sampler,
            pruner=pruner,
            heartbeat_interval=heartbeat,
            device=device,
            on_progress=show,
            poll_seconds=0.5,
            on_note=notes.append,
            enqueue=yardsticks,
        )
    except KeyboardInterrupt:
        if live is not None:
            live.stop()
        search_view.interrupted(name)
        raise typer.Exit(130) from None
    finally:
        if live is not None:
            live.stop()
    export = export_study(
        result, out or Path("runs") / safe_dir_name(name), budget_flops=flops,
        max_latency_ms=latency_s * 1e3 if latency_s else None,
    )  # fmt: skip
    export.notes.extend(notes)
    score = config.proxy if config.training_free else "accuracy"
    search_view.show_export(export, json_out, name, storage, score)
    if notes:
        raise typer.Exit(1)


@app.command()
def worker(
    storage: str = typer.Option(..., "--storage", metavar="URL", help=STORAGE_HELP),
    study: str = typer.Option(..., "--study", metavar="NAME", help="Name of an existing study."),
    trials: int | None = typer.Option(
        None,
        "--trials",
        metavar="N",
        help="Add this many trials (default: until the study's target is reached).",
    ),
    timeout: str | None = typer.Option(None, "--timeout", metavar="DURATION", help=TIMEOUT_HELP),
    sampler: Sampler | None = typer.Option(None, "--sampler", help=SAMPLER_HELP + WORKER_STRATEGY),
    pruner: Pruner | None = typer.Option(None, "--pruner", help=PRUNER_HELP + WORKER_STRATEGY),
    seed: int | None = typer.Option(
        None,
        "--seed",
        metavar="N",
        help="One integer seeding this worker's sampler only; data split and model init keep "
        "the study's seed (default: the study's seed; the process id keeps workers apart).",
    ),
    device: Device = "auto",
    heartbeat: int | None = typer.Option(
        None, "--heartbeat", metavar="SECONDS", help=HEARTBEAT_HELP + WORKER_STRATEGY
    ),
) -> None:
    """Join an existing study from this machine and run trials until its target is reached."""
    import optuna

    from coatnet_nas.search import run_worker

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        done = run_worker(
            storage,
            study,
            trials=trials,
            timeout=parse_duration(timeout),
            sampler=sampler,
            pruner=pruner,
            seed=seed,
            heartbeat_interval=heartbeat,
            device=device,
            worker_index=1000,
        )
    except KeyboardInterrupt:
        search_view.interrupted(study)
        raise typer.Exit(130) from None
    console.print(f"worker done: study {study}, {done} architectures evaluated", markup=False)


@app.command()
def report(
    storage: str = typer.Option(DEFAULT_STORAGE, "--storage", metavar="URL", help=STORAGE_HELP),
    study: str = typer.Option(..., "--study", metavar="NAME", help="Name of an existing study."),
    out: Path | None = typer.Option(None, "--out", metavar="PATH", help=OUT_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary."),
) -> None:
    """Regenerate best.yaml, trials.csv, plots and the leaderboard of any study."""
    from coatnet_nas.search import export_study
    from coatnet_nas.search.opening import open_existing_study

    study_obj, config = open_existing_study(storage, study)
    export = export_study(
        study_obj,
        out or Path("runs") / safe_dir_name(study),
        budget_flops=config.flops,
        max_latency_ms=config.max_latency * 1e3 if config.max_latency else None,
    )
    score = config.proxy if config.training_free else "accuracy"
    search_view.show_export(export, json_out, study, storage, score)
