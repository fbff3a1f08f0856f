"""The command line's contract, in one function: run the app, turn every user error into one
bounded ``error:`` paragraph and exit code 2, Ctrl-C into 130.

Kept apart from the package ``__init__`` (which imports every command to register it) so that a
command can re-enter the CLI, as each ``--nproc`` rank does, without importing the package.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from coatnet_nas.cli.app import app
from coatnet_nas.cli.errors import failing_command, one_paragraph, user_message
from coatnet_nas.errors import CoatnetError
from coatnet_nas.limits import bounded

__all__ = ["run_app"]


def run_app(argv: Sequence[str] | None = None) -> int:
    """Run the registered commands with ``argv`` (default ``sys.argv[1:]``); the exit code."""
    try:
        result = app(
            args=list(argv) if argv is not None else None,
            standalone_mode=False,
            prog_name="coatnet",
        )
    except CoatnetError as exc:
        sys.stdout.flush()
        message = user_message(exc, failing_command(exc))
        sys.stderr.write(f"error: {bounded(one_paragraph(message))}\n")
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors: bad option, missing argument (exit 2)
        # Same contract as a library error (one bounded ``error:`` paragraph), plus where help is.
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        message = bounded(one_paragraph(exc.format_message()))
        sys.stdout.flush()
        sys.stderr.write(f"error: {message}{hint}\n")
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("interrupted\n")
        return 130
    return result if isinstance(result, int) else 0
