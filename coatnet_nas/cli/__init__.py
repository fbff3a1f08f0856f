"""``coatnet`` command line: thin commands over the library's public API.

:func:`run` is the whole CLI contract: user errors (:class:`CoatnetError`, bad options) print one
paragraph on stderr and return 2; no traceback reaches the user for input they control. The
paragraph is bounded (:data:`~coatnet_nas.limits.MAX_MESSAGE_CHARS`) whatever produced it: the
library bounds its own messages, this is the last defence.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from coatnet_nas.cli import build as _build  # noqa: F401  (registers commands)
from coatnet_nas.cli import compare as _compare  # noqa: F401  (registers commands)
from coatnet_nas.cli import data as _data  # noqa: F401  (registers commands)
from coatnet_nas.cli import proxy as _proxy  # noqa: F401  (registers commands)
from coatnet_nas.cli import search as _search  # noqa: F401
from coatnet_nas.cli import train as _train  # noqa: F401  (registers commands)
from coatnet_nas.cli.app import app
from coatnet_nas.cli.errors import one_paragraph, user_message
from coatnet_nas.errors import CoatnetError
from coatnet_nas.limits import bounded

__all__ = ["app", "main", "run"]


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    try:
        result = app(
            args=list(argv) if argv is not None else None,
            standalone_mode=False,
            prog_name="coatnet",
        )
    except CoatnetError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"error: {bounded(one_paragraph(user_message(exc)))}\n")
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


def main() -> None:
    sys.exit(run())
