"""The Typer app, shared console objects and argument parsers used by every command module."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperCommand

app = typer.Typer(
    name="coatnet",
    help="Explore CoAtNet-family conv/attention hybrids: build, profile, train, search, compare.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
# Piped output (CI logs, files) gets a readable width instead of rich's 80-column default.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)


def print_stderr(line: str) -> None:
    """A line on stderr, after whatever stdout already holds (so piped output stays in order)."""
    sys.stdout.flush()
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


# Help panels: every command groups its options under these headings (rich_help_panel).
DATA = "Data"
SHRINK = "Model shrink"
OPTIMISATION = "Optimisation"
RUNTIME = "Runtime"
OUTPUT = "Output"


def renamed(**old_to_new: str) -> type[TyperCommand]:
    """A command class that still accepts old option spellings (``batch="--batch-size"`` maps
    ``--batch`` to ``--batch-size``) for one release, with a one-line deprecation note each.

    The old spelling is not declared, so help shows only the new one. A new name of ``""``
    turns the old option into a positional argument (``--spec X`` becomes ``X``).
    """
    aliases = {"--" + old.replace("_", "-"): new for old, new in old_to_new.items()}

    class Renamed(TyperCommand):
        def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
            return super().parse_args(ctx, _rewrite(args, aliases))

    return Renamed


def _rewrite(args: list[str], aliases: dict[str, str]) -> list[str]:
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        old, eq, value = arg.partition("=")
        new = aliases.get(old)
        if new is None:
            out.append(arg)
            continue
        use = f"use {new}" if new else "give it as an argument"
        print_stderr(f"note: {old} is deprecated and will be removed; {use}")
        if new:
            out.append(new + eq + value)
        elif eq:
            out.append(value)
    return out


def print_json(obj: Any) -> None:
    """Machine-readable output: plain JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def parse_image_size(text: str | None) -> tuple[int, int] | None:
    """``"224"`` or ``"256x192"`` (H x W); the library's parser, named for the option."""
    from coatnet_nas.units import parse_image_size as parse

    return parse(text)
