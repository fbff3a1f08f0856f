"""``--nproc N`` (``coatnet train``, ``coatnet supernet train``): the same command in N ranks
under torch's elastic agent.

The parent turns its parsed options back into a command line (after the command's path, such as
``supernet train``) and starts the ranks; each rank re-enters the CLI through
:func:`coatnet_nas.cli.contract.run_app`.
"""

from __future__ import annotations

import typer

EXIT_DIVERGED = 1  # a run that diverged finished, but its model is no good


def launch(ctx: typer.Context, nproc: int, device: str) -> None:
    """Run this same command in ``nproc`` ranks (torch's elastic agent) and exit as rank 0."""
    from coatnet_nas.signals import Terminated
    from coatnet_nas.threads import threads_per_worker
    from coatnet_nas.train.distributed import WorkersFailed, launch_local

    params = dict(ctx.params)
    if params["threads"] is None and not device.startswith("cuda"):
        params["threads"] = threads_per_worker(nproc)  # ranks share the cores we were given
    argv = [*command_path(ctx), *argv_for(ctx.command, params)]
    try:
        launch_local(nproc, rank_main, [argv])
    except WorkersFailed as exc:
        codes = set(exc.exit_codes.values())
        if len(codes) == 1 and codes <= {EXIT_DIVERGED, 2}:
            raise typer.Exit(codes.pop()) from None  # rank 0 has said why
        raise
    except Terminated as exc:  # SIGTERM to this process: the agent passed it on to the ranks
        raise typer.Exit(exc.exit_code) from None  # and each rank has said it stopped


def command_path(ctx: typer.Context) -> list[str]:
    """The names that lead to this command from the app: ``["supernet", "train"]``."""
    names: list[str] = []
    while ctx.parent is not None:
        names.insert(0, ctx.info_name or ctx.command.name)
        ctx = ctx.parent
    return names


def argv_for(command, params: dict) -> list[str]:
    """The command line that means ``params`` (for the ranks), ``--nproc`` left out."""
    argv: list[str] = []
    for param in command.params:
        value = params.get(param.name)
        value = getattr(value, "value", value)  # an enum choice: its value
        if param.name == "nproc" or value is None:
            continue
        if param.param_type_name == "argument":
            argv.append(str(value))
        elif getattr(param, "is_flag", False) and param.secondary_opts:
            argv.append(param.opts[0] if value else param.secondary_opts[0])
        elif getattr(param, "is_flag", False):
            if value:
                argv.append(param.opts[0])
        else:
            argv += [param.opts[0], str(value)]
    return argv


def rank_main(argv: list[str]) -> int:
    """One rank of ``--nproc``: ``argv`` (the command's path, then its options) under the agent's
    environment."""
    import sys

    # Unpickling this function in the spawned rank imported the package, which registered
    # every command on the app.
    from coatnet_nas.cli.contract import run_app

    code = run_app(argv)
    if code:
        sys.exit(code)  # the agent sees a failed rank and stops the others
    return code
