"""``coatnet search``, ``coatnet worker`` and ``coatnet report``: Optuna studies from the shell.

(Over ~300 lines: three commands over one study, sharing their option help texts.)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import typer

from coatnet_nas.cli import search_view
from coatnet_nas.cli import slurm_options as slurm
from coatnet_nas.cli.app import DATA, OPTIMISATION, OUTPUT, RUNTIME, SHRINK, app, console
from coatnet_nas.cli.options import (
    Budget,
    DataDir,
    Device,
    MaxParams,
    MemoryCap,
    ProxyDataset,
    StorageRetry,
    check_memory_cap,
)
from coatnet_nas.search.launchers import Launcher
from coatnet_nas.search.storage import DEFAULT_STORAGE, safe_dir_name
from coatnet_nas.search.strategies import Pruner, Sampler
from coatnet_nas.units import parse_duration, parse_flops, parse_latency, parse_params

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
    ctx: typer.Context,
    flops: Budget = None,
    params: MaxParams = None,
    max_latency: str | None = typer.Option(
        None,
        "--max-latency",
        rich_help_panel=SHRINK,
        metavar="TIME",
        help="Latency limit at the target size, e.g. 20ms, predicted from --table before any "
        "training.",
    ),
    latency_table: Path | None = typer.Option(
        None,
        "--table",
        rich_help_panel=SHRINK,
        metavar="PATH",
        help="Latency table from 'coatnet latency table' for the device the model will run on "
        "(for --max-latency or --objective accuracy,latency).",
    ),
    space_path: Path | None = typer.Option(
        None,
        "--space",
        rich_help_panel=SHRINK,
        metavar="PATH",
        help="Search-space YAML (default: the bundled one).",
    ),
    dataset: ProxyDataset = None,
    memory_cap: MemoryCap = None,
    data_dir: DataDir = None,
    trials: int | None = typer.Option(
        None,
        "--trials",
        rich_help_panel=OPTIMISATION,
        metavar="N",
        help="New architectures this run evaluates (default 10; over-budget draws and repeats "
        "of an evaluated architecture do not count).",
    ),
    study_trials: int | None = typer.Option(
        None,
        "--study-trials",
        rich_help_panel=OPTIMISATION,
        metavar="N",
        help="Stop once the study holds N evaluated architectures (from any process).",
    ),
    enqueue: list[Path] = typer.Option(
        [],
        "--enqueue",
        rich_help_panel=OPTIMISATION,
        metavar="SPEC",
        help="Evaluate this spec first as a yardstick, e.g. specs/coatnet0.yaml (repeatable).",
    ),
    baseline: list[str] = typer.Option(
        [],
        "--baseline",
        rich_help_panel=OPTIMISATION,
        metavar="NAME",
        help="A paper model fitted to the budget that goes through every rung as a yardstick: "
        "coatnet0 (repeatable).",
    ),
    rungs: int | None = typer.Option(
        None,
        "--rungs",
        rich_help_panel=OPTIMISATION,
        metavar="N",
        help="Use the first N rungs of the space's promotion ladder (1: the proxy alone, no "
        "re-training of finalists; default: all).",
    ),
    timeout: str | None = typer.Option(
        None, "--timeout", rich_help_panel=OPTIMISATION, metavar="DURATION", help=TIMEOUT_HELP
    ),
    storage_url: str = typer.Option(
        DEFAULT_STORAGE, "--storage", rich_help_panel=RUNTIME, metavar="URL", help=STORAGE_HELP
    ),
    study_name: str | None = typer.Option(
        None,
        "--study",
        rich_help_panel=RUNTIME,
        metavar="NAME",
        help="Study to create or resume (default: named after space, budget and objectives).",
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        rich_help_panel=RUNTIME,
        metavar="N",
        help="Local worker processes (they share the CPU cores).",
    ),
    sampler: Sampler = typer.Option(
        Sampler.TPE, "--sampler", rich_help_panel=OPTIMISATION, help=SAMPLER_HELP
    ),
    pruner: Pruner = typer.Option(
        Pruner.HYPERBAND, "--pruner", rich_help_panel=OPTIMISATION, help=PRUNER_HELP
    ),
    objectives: str = typer.Option(
        "accuracy",
        "--objective",
        rich_help_panel=OPTIMISATION,
        metavar="NAMES",
        help="accuracy, or accuracy then costs to minimize, e.g. accuracy,flops, "
        "accuracy,params or accuracy,latency (with --table).",
    ),
    seed: int = typer.Option(
        0,
        "--seed",
        rich_help_panel=RUNTIME,
        metavar="N",
        help="One integer seeding the data split, model init and the sampler (each run and "
        "worker draws its own sampler seed from it and the study's size, so a resumed run "
        "proposes new points).",
    ),
    device: Device = "auto",
    proxy_epochs: float | None = typer.Option(
        None,
        "--proxy-epochs",
        rich_help_panel=OPTIMISATION,
        metavar="N",
        help="Proxy training epochs (default: the space's).",
    ),
    subset: float | None = typer.Option(
        None,
        "--subset",
        rich_help_panel=DATA,
        metavar="FRACTION",
        help="Fraction of the proxy data set used (default: the space's).",
    ),
    proxy: str = typer.Option(
        "train",
        "--proxy",
        rich_help_panel=OPTIMISATION,
        metavar="NAME",
        help="train (proxy recipe) or a training-free score: naswot, synflow, snip, grad_norm, "
        "jacob_cov, params, flops (seconds per trial; check it first with coatnet proxy-check).",
    ),
    out_dir: Path | None = typer.Option(
        None, "--out", rich_help_panel=OUTPUT, metavar="PATH", help=OUT_HELP
    ),
    heartbeat_interval: int = typer.Option(
        30, "--heartbeat", rich_help_panel=RUNTIME, metavar="SECONDS", help=HEARTBEAT_HELP
    ),
    storage_retry: StorageRetry = None,
    json_out: bool = typer.Option(
        False, "--json", rich_help_panel=OUTPUT, help="Print one JSON summary at the end."
    ),
    tensorboard: Path | None = typer.Option(
        None,
        "--tensorboard",
        rich_help_panel=OUTPUT,
        metavar="DIR",
        help="Write TensorBoard event files per trained trial (DIR/trial_NNNN_rung=R_seed=S: "
        "loss, accuracy, learning rate, images/s, the trial's objective and status).",
    ),
    launcher: slurm.LauncherOpt = Launcher.LOCAL,
    slurm_partition: slurm.Partition = None,
    slurm_time: slurm.Time = "4:00:00",
    slurm_cpus_per_task: slurm.Cpus = None,
    slurm_gpus_per_task: slurm.Gpus = None,
    slurm_mem_gb: slurm.Mem = None,
    slurm_account: slurm.Account = None,
    slurm_folder: slurm.Logs = Path("runs/slurm/%j"),
    slurm_setup: slurm.Setup = [],  # noqa: B006  (typer reads the default; never mutated)
    slurm_extra: slurm.Extra = [],  # noqa: B006
) -> None:
    """Search layouts, depths and widths under a budget (proxy-trained or --proxy scores)."""
    import optuna

    from coatnet_nas.search import export_study, load_space, run_search

    space = load_space(space_path).with_proxy(
        dataset=dataset,
        data_dir=str(data_dir) if data_dir is not None else None,
        epochs=proxy_epochs,
        subset=subset,
    )
    space = space.with_rungs(rungs) if rungs is not None else space
    _share_memory_cap(memory_cap)
    config = _search_config(
        space, flops, params, max_latency, objectives, seed, proxy, latency_table
    )
    name = _study_name(study_name, config)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    notes: list[str] = []
    try:
        with search_view.live_progress(name, quiet=json_out) as show:
            result = run_search(
                config,
                storage_url=storage_url,
                study_name=name,
                trials=trials if trials is not None or study_trials is not None else 10,
                study_trials=study_trials,
                timeout=parse_duration(timeout),
                workers=workers,
                sampler=sampler,
                pruner=pruner,
                heartbeat_interval=heartbeat_interval,
                storage_retry_seconds=parse_duration(storage_retry, "storage_retry"),
                device=device,
                on_progress=show,
                poll_seconds=0.5,
                on_note=notes.append,
                enqueue=_yardsticks(enqueue, baseline, config),
                tensorboard=str(tensorboard) if tensorboard is not None else None,
                **slurm.launch_args(ctx.params),
            )
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM
        raise typer.Exit(search_view.interrupted(name, exc)) from None
    export = export_study(
        result,
        out_dir or Path("runs") / safe_dir_name(name),
        budget_flops=config.flops,
        max_latency_ms=config.max_latency * 1e3 if config.max_latency else None,
    )
    export.notes.extend(notes)
    score = config.proxy if config.training_free else "accuracy"
    search_view.show_export(export, json_out, name, storage_url, score)
    if notes:
        raise typer.Exit(1)


def _search_config(  # type: ignore[no-untyped-def]
    space, flops, params, max_latency, objectives: str, seed: int, proxy: str, latency_table
):
    """The SearchConfig the options mean; budgets left out are the space's own."""
    from coatnet_nas.search import SearchConfig

    return SearchConfig(
        space=space,
        flops=parse_flops(flops, what="flops") if flops is not None else space.budget.flops,
        params=parse_params(params, what="params") if params is not None else space.budget.params,
        objectives=tuple(o.strip() for o in objectives.split(",") if o.strip()),
        seed=seed,
        proxy=proxy.strip(),
        max_latency=parse_latency(max_latency, what="max_latency") if max_latency else None,
        latency_table=_table_json(latency_table),
    )


def _share_memory_cap(memory_cap: str | None) -> None:
    """Checked, and set for the data layer here and in every worker process."""
    check_memory_cap(memory_cap)
    if memory_cap is not None:
        from coatnet_nas.data.mapped import CAP_ENV  # torch-heavy: only when asked for

        os.environ[CAP_ENV] = memory_cap


def _yardsticks(enqueue: list[Path], baselines: list[str], config) -> list:  # type: ignore[no-untyped-def]
    """``--enqueue`` paths, then each ``--baseline`` fitted to the search's budget."""
    from coatnet_nas.search.warmstart import fitted_baseline

    fitted = [fitted_baseline(b, config.space, config.flops, config.params) for b in baselines]
    return [*(str(p) for p in enqueue), *fitted]


def _study_name(given: str | None, config) -> str:  # type: ignore[no-untyped-def]
    """The study's name: given, else from space, budget and objectives (and a training-free
    proxy, so those studies stay apart by default)."""
    from coatnet_nas.search import default_study_name

    if given is not None:
        return given
    name = default_study_name(config)
    if config.training_free:
        name += "-" + re.sub(r"[^A-Za-z0-9._]+", "-", config.proxy).strip("-")
    return name


@app.command()
def worker(
    storage_url: str = typer.Option(
        ..., "--storage", rich_help_panel=RUNTIME, metavar="URL", help=STORAGE_HELP
    ),
    study_name: str = typer.Option(
        ..., "--study", rich_help_panel=RUNTIME, metavar="NAME", help="Name of an existing study."
    ),
    trials: int | None = typer.Option(
        None,
        "--trials",
        rich_help_panel=OPTIMISATION,
        metavar="N",
        help="Add this many trials (default: until the study's target is reached).",
    ),
    timeout: str | None = typer.Option(
        None, "--timeout", rich_help_panel=OPTIMISATION, metavar="DURATION", help=TIMEOUT_HELP
    ),
    sampler: Sampler | None = typer.Option(
        None, "--sampler", rich_help_panel=OPTIMISATION, help=SAMPLER_HELP + WORKER_STRATEGY
    ),
    pruner: Pruner | None = typer.Option(
        None, "--pruner", rich_help_panel=OPTIMISATION, help=PRUNER_HELP + WORKER_STRATEGY
    ),
    seed: int | None = typer.Option(
        None,
        "--seed",
        rich_help_panel=RUNTIME,
        metavar="N",
        help="One integer seeding this worker's sampler only; data split and model init keep "
        "the study's seed (default: the study's seed; the process id keeps workers apart).",
    ),
    device: Device = "auto",
    heartbeat_interval: int | None = typer.Option(
        None,
        "--heartbeat",
        rich_help_panel=RUNTIME,
        metavar="SECONDS",
        help=HEARTBEAT_HELP + WORKER_STRATEGY,
    ),
    storage_retry: StorageRetry = None,
) -> None:
    """Join an existing study from this machine and run trials until its target is reached."""
    import optuna

    from coatnet_nas.search import run_worker

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        done = run_worker(
            storage_url,
            study_name,
            trials=trials,
            timeout=parse_duration(timeout),
            sampler=sampler,
            pruner=pruner,
            seed=seed,
            heartbeat_interval=heartbeat_interval,
            storage_retry_seconds=parse_duration(storage_retry, "storage_retry"),
            device=device,
            worker_index=1000,
        )
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM
        raise typer.Exit(search_view.interrupted(study_name, exc)) from None
    console.print(f"worker done: study {study_name}, {done} architectures evaluated", markup=False)


@app.command()
def report(
    storage_url: str = typer.Option(
        DEFAULT_STORAGE, "--storage", rich_help_panel=RUNTIME, metavar="URL", help=STORAGE_HELP
    ),
    study_name: str = typer.Option(
        ..., "--study", rich_help_panel=RUNTIME, metavar="NAME", help="Name of an existing study."
    ),
    out_dir: Path | None = typer.Option(
        None, "--out", rich_help_panel=OUTPUT, metavar="PATH", help=OUT_HELP
    ),
    json_out: bool = typer.Option(
        False, "--json", rich_help_panel=OUTPUT, help="Print one JSON summary."
    ),
) -> None:
    """Regenerate best.yaml, trials.csv, plots and the leaderboard of any study."""
    from coatnet_nas.search import export_study
    from coatnet_nas.search.opening import open_existing_study

    study_obj, config = open_existing_study(storage_url, study_name)
    export = export_study(
        study_obj,
        out_dir or Path("runs") / safe_dir_name(study_name),
        budget_flops=config.flops,
        max_latency_ms=config.max_latency * 1e3 if config.max_latency else None,
    )
    score = config.proxy if config.training_free else "accuracy"
    search_view.show_export(export, json_out, study_name, storage_url, score)
