"""``coatnet search --launcher slurm``: the flags that become a :class:`SlurmOptions`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coatnet_nas.cli.app import RUNTIME
from coatnet_nas.errors import CoatnetError
from coatnet_nas.search.launchers import Launcher, SlurmOptions

__all__ = ["launch_args", "slurm_options"]

PANEL = "SLURM (with --launcher slurm)"

LauncherOpt = Annotated[
    Launcher,
    typer.Option(
        "--launcher",
        help="local: worker processes here; slurm: --workers tasks of a SLURM job array "
        "(through submitit, pip install 'coatnet-nas[slurm]') on a PostgreSQL --storage.",
        rich_help_panel=RUNTIME,
    ),
]
Partition = Annotated[
    str | None,
    typer.Option("--slurm-partition", metavar="NAME", help="Partition.", rich_help_panel=PANEL),
]
Time = Annotated[
    str,
    typer.Option(
        "--slurm-time",
        metavar="TIME",
        help="Time limit of each task, e.g. 4:00:00 or 1-00:00:00; a task near it re-queues "
        "its trial and is requeued itself.",
        rich_help_panel=PANEL,
    ),
]
Cpus = Annotated[
    int | None,
    typer.Option("--slurm-cpus", metavar="N", help="CPUs per task.", rich_help_panel=PANEL),
]
Gpus = Annotated[
    int | None,
    typer.Option("--slurm-gpus", metavar="N", help="GPUs per task.", rich_help_panel=PANEL),
]
Mem = Annotated[
    float | None,
    typer.Option("--slurm-mem-gb", metavar="GB", help="Memory per task.", rich_help_panel=PANEL),
]
Account = Annotated[
    str | None,
    typer.Option("--slurm-account", metavar="NAME", help="Account.", rich_help_panel=PANEL),
]
Logs = Annotated[
    Path,
    typer.Option(
        "--slurm-logs",
        metavar="DIR",
        help="Folder of the tasks' scripts and logs (%j: the job id).",
        rich_help_panel=PANEL,
    ),
]
Setup = Annotated[
    list[str],
    typer.Option(
        "--slurm-setup",
        metavar="LINE",
        help="A shell line the batch script runs first, e.g. 'module load cuda' (repeatable).",
        rich_help_panel=PANEL,
    ),
]
Extra = Annotated[
    list[str],
    typer.Option(
        "--slurm-option",
        metavar="KEY=VALUE",
        help="Any other sbatch option by its long name, e.g. qos=high (repeatable).",
        rich_help_panel=PANEL,
    ),
]


def slurm_options(launcher: Launcher, params: dict) -> SlurmOptions | None:
    """The SLURM settings of the --slurm-* flags in ``params`` (a command's ctx.params; None
    with --launcher local, which takes none)."""
    setup, extra = params["slurm_setup"], params["slurm_extra"]
    named = ("partition", "cpus_per_task", "gpus_per_task", "mem_gb", "account")
    given = {name: params[f"slurm_{name}"] for name in named}
    if launcher is Launcher.LOCAL:
        if any(v is not None for v in [*given.values(), *setup, *extra]):
            raise CoatnetError("the --slurm-* options apply with --launcher slurm.")
        return None
    pairs = {}
    for item in extra:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CoatnetError(f"--slurm-option takes KEY=VALUE (e.g. qos=high), got {item!r}.")
        pairs[key.strip().lstrip("-").replace("-", "_")] = value.strip()
    return SlurmOptions(
        **given,
        time=params["slurm_time"],
        folder=str(params["slurm_folder"]),
        setup=tuple(setup),
        extra=pairs,
    )


def launch_args(params: dict) -> dict:
    """``run_search``'s ``launcher`` and ``slurm`` from ``coatnet search``'s --launcher and
    --slurm-* options (its ctx.params)."""
    return {"launcher": params["launcher"], "slurm": slurm_options(params["launcher"], params)}
