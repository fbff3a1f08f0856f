"""``coatnet train --nproc N``: the same command in N ranks under torch's elastic agent.

The parent turns its parsed options back into a command line and starts the ranks; each rank
re-enters the CLI through :func:`coatnet_nas.cli.contract.run_app`.
"""

from __future__ import annotations

import typer

EXIT_DIVERGED = 1  # a run that diverged finished, but its model is no good


def launch(ctx: typer.Context, nproc: int, runtime) -> None:
    """Run this same command in ``nproc`` ranks (torch's elastic agent) and exit as rank 0."""
    import os

    from coatnet_nas.train.distributed import WorkersFailed, launch_local

    params = dict(ctx.params)
    if params["threads"] is None and not runtime.device.startswith("cuda"):
        params["threads"] = max(1, (os.cpu_count() or 1) // nproc)  # ranks share the CPU
    argv = argv_for(ctx.command, params)
    try:
        launch_local(nproc, rank_main, [argv])
    except WorkersFailed as exc:
        codes = set(exc.exit_codes.values())
        if len(codes) == 1 and codes <= {EXIT_DIVERGED, 2}:
            raise typer.Exit(codes.pop()) from None  # rank 0 has said why
        raise


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
    """One rank of ``--nproc``: the train command under the agent's environment."""
    import sys

    # Unpickling this function in the spawned rank imported the package, which registered
    # every command on the app.
    from coatnet_nas.cli.contract import run_app

    code = run_app(["train", *argv])
    if code:
        sys.exit(code)  # the agent sees a failed rank and stops the others
    return code
