"""``coatnet data fetch`` and ``coatnet data list``: get datasets and see where they are found."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from coatnet_nas.cli.app import app, console, print_json
from coatnet_nas.cli.options import DataDir

data_app = typer.Typer(
    help="Datasets for proxy training: download them, see where they are found.",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")


@data_app.command("fetch")
def fetch(
    name: str = typer.Argument(..., help="fashion-mnist, cifar10 or cifar100."),
    dest: Path | None = typer.Option(
        None,
        "--data-dir",
        "--dir",
        metavar="PATH",
        help="Download into this directory (default: the user cache dir, searched by every "
        "command; a --data-dir given here must be given to them too).",
    ),
    mirror: str | None = typer.Option(
        None,
        "--mirror",
        metavar="URL",
        help="Base URL serving the same files (checksums still verified).",
    ),
    force: bool = typer.Option(False, "--force", help="Download even if verified files exist."),
) -> None:
    """Download a dataset's official archives, verify their MD5 and move them into place."""
    from coatnet_nas.data.fetch import fetch_dataset

    tasks: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
        TransferSpeedColumn(), TimeRemainingColumn(), console=console, transient=False,
    ) as bar:  # fmt: skip

        def progress(filename: str, done: int, total: int | None) -> None:
            if filename not in tasks:
                tasks[filename] = bar.add_task(filename, total=total)
            bar.update(tasks[filename], completed=done, total=total)

        target = fetch_dataset(name, dest, mirror=mirror, progress=progress, force=force)
    console.print(f"{name}: verified files in {target}", markup=False)


@data_app.command("list")
def list_datasets(
    data_dir: DataDir = None,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show each dataset and where it is found (or the places searched)."""
    from coatnet_nas.data.locate import search_roots
    from coatnet_nas.data.sources import dataset_names, find_dataset
    from coatnet_nas.errors import DataError

    rows: dict[str, dict] = {}
    for name in dataset_names():
        try:
            path, _ = find_dataset(name, data_dir)
        except DataError:  # generated, or needs an argument (folder:PATH): nothing to find
            if ":" not in name:
                rows[name] = {"found": True, "path": None, "note": "built in"}
            continue
        rows[name] = {
            "found": path is not None,
            "path": str(path) if path else None,
            "note": "" if path else f"coatnet data fetch {name}",
        }
    roots = [str(r) for r in search_roots(data_dir)]
    if json_out:
        print_json({"datasets": rows, "searched": roots})
        return
    for name, row in rows.items():
        where = row["path"] or ("built in" if row["found"] else f"missing (run: {row['note']})")
        console.print(f"{name:14s} {where}", markup=False)
    console.print("folder:<path>  your own images, one sub-folder per class", markup=False)
    console.print(f"searched: {', '.join(roots)}", markup=False)
