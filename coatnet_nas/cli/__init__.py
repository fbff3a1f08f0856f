"""``coatnet`` command line: thin commands over the library's public API.

:func:`run` (:func:`coatnet_nas.cli.contract.run_app` once every command is registered) is the
whole CLI contract: user errors (:class:`CoatnetError`, bad options) print one
paragraph on stderr and return 2; no traceback reaches the user for input they control. The
paragraph is bounded (:data:`~coatnet_nas.limits.MAX_MESSAGE_CHARS`) whatever produced it: the
library bounds its own messages, this is the last defence.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from coatnet_nas.cli import build as _build  # noqa: F401  (registers commands)
from coatnet_nas.cli import compare as _compare  # noqa: F401  (registers commands)
from coatnet_nas.cli import dashboard as _dashboard  # noqa: F401  (registers commands)
from coatnet_nas.cli import data as _data  # noqa: F401  (registers commands)
from coatnet_nas.cli import export as _export  # noqa: F401  (registers commands)
from coatnet_nas.cli import latency as _latency  # noqa: F401  (registers commands)
from coatnet_nas.cli import proxy as _proxy  # noqa: F401  (registers commands)
from coatnet_nas.cli import search as _search  # noqa: F401
from coatnet_nas.cli import supernet as _supernet  # noqa: F401  (registers commands)
from coatnet_nas.cli import train as _train  # noqa: F401  (registers commands)
from coatnet_nas.cli.app import app
from coatnet_nas.cli.contract import run_app

__all__ = ["app", "command", "main", "run"]


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    return run_app(argv)


def command(*names: str):  # type: ignore[no-untyped-def]
    """The click command ``coatnet NAMES...`` (``command("latency", "table")``), whose
    parameters name the flags in error messages."""
    import typer.main

    found = typer.main.get_command(app)
    for name in names:
        found = found.commands[name]  # type: ignore[attr-defined]
    return found


def main() -> None:
    sys.exit(run())
