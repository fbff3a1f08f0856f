"""The Typer app, shared console objects and argument parsers used by every command module."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console

from coatnet_nas.errors import CoatnetError

app = typer.Typer(
    name="coatnet",
    help="Explore CoAtNet-family conv/attention hybrids: build, profile, train, search, compare.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
# Piped output (CI logs, files) gets a readable width instead of rich's 80-column default.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)


def print_stderr(line: str) -> None:
    """A line on stderr, after whatever stdout already holds (so piped output stays in order)."""
    sys.stdout.flush()
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def print_json(obj: Any) -> None:
    """Machine-readable output: plain JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def parse_image_size(text: str | None) -> tuple[int, int] | None:
    """``"224"`` or ``"256x192"`` (H x W)."""
    if text is None:
        return None
    parts = text.lower().replace("×", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values, default=0) <= 0:
        raise CoatnetError(
            f"--image-size: expected a positive integer like 224 or HxW like 256x192, got {text!r}."
        )
    return (values[0], values[-1])
