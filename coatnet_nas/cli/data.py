"""``coatnet data fetch|prepare|list|clean``: get datasets, prepare image folders into memory-mapped
caches, see where everything is, and remove caches."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from coatnet_nas.cli.app import (
    DATA,
    OUTPUT,
    SHRINK,
    app,
    console,
    parse_image_size,
    print_json,
    renamed,
)
from coatnet_nas.cli.options import DataDir
from coatnet_nas.errors import CoatnetError

data_app = typer.Typer(
    help="Datasets for proxy training: download them, prepare image folders, see where they are.",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")


@data_app.command("fetch", cls=renamed(dir="--data-dir"))
def fetch(
    name: str = typer.Argument(..., help="fashion-mnist, cifar10 or cifar100."),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        metavar="PATH",
        help="Download into this directory (default: the user cache dir, searched by every "
        "command; a --data-dir given here must be given to them too).",
    ),
    mirror: str | None = typer.Option(
        None,
        "--mirror",
        metavar="URL",
        help="Base URL serving the same files (checksums still verified).",
        rich_help_panel=DATA,
    ),
    force: bool = typer.Option(
        False, "--force", help="Download even if verified files exist.", rich_help_panel=DATA
    ),
) -> None:
    """Download a dataset's official archives, verify their MD5 and move them into place."""
    from coatnet_nas.data.fetch import fetch_dataset

    tasks: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:

        def progress(filename: str, done: int, total: int | None) -> None:
            if filename not in tasks:
                tasks[filename] = bar.add_task(filename, total=total)
            bar.update(tasks[filename], completed=done, total=total)

        target = fetch_dataset(name, data_dir, mirror=mirror, progress=progress, force=force)
    console.print(f"{name}: verified files in {target}", markup=False)


@data_app.command("list")
def list_datasets(
    data_dir: DataDir = None,
    json_out: bool = typer.Option(
        False, "--json", help="Print one JSON object.", rich_help_panel=OUTPUT
    ),
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
    from coatnet_nas.data.cache import list_caches, prepared_root

    roots = [str(r) for r in search_roots(data_dir)]
    caches = list_caches()
    if json_out:
        print_json({"datasets": rows, "searched": roots, "prepared": caches})
        return
    for name, row in rows.items():
        where = row["path"] or ("built in" if row["found"] else f"missing (run: {row['note']})")
        console.print(f"{name:14s} {where}", markup=False)
    console.print("folder:<path>  your own images, one sub-folder per class", markup=False)
    console.print(f"searched: {', '.join(roots)}", markup=False)
    console.print(f"prepared caches in {prepared_root()}: {len(caches)}", markup=False)
    for row in caches:
        size = "x".join(str(v) for v in row["size"] or []) or "?"
        state = f"{row['images']} images" if row["complete"] else "incomplete (resumable)"
        skipped = f", {row['skipped']} skipped" if row["skipped"] else ""
        what = f"folder:{row['source'] or '?'}" if row["kind"] == "folder" else row["kind"]
        console.print(
            f"  {what} @ {size}: {state}{skipped}, {_mib(row['bytes'])} on disk  ({row['path']})",
            markup=False,
        )


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _folder_arg(text: str) -> Path:
    kind, _, path = text.partition(":")
    if kind.strip().lower() != "folder" or not path.strip():
        raise CoatnetError(f"expected folder:PATH (an image folder), got {text!r}.")
    return Path(path.strip()).expanduser()


@data_app.command("prepare")
def prepare(
    name: str = typer.Argument(..., metavar="folder:PATH", help="An image folder."),
    image_size: str = typer.Option(
        ...,
        "--image-size",
        metavar="S",
        help="Cache size: 64 or HxW (shorter side, centre crop).",
        rich_help_panel=SHRINK,
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        metavar="K",
        help="Decoding processes (default: one per core).",
        rich_help_panel=DATA,
    ),
    force: bool = typer.Option(
        False, "--force", help="Decode again even if a cache is fresh.", rich_help_panel=DATA
    ),
) -> None:
    """Decode an image folder once into a memory-mapped cache that every run at this size reads.

    Each image is resized so its shorter side fits the size, then centre-cropped. A stopped
    prepare resumes where it left off; unreadable images are skipped and listed.
    """
    import json
    import time

    from coatnet_nas.data.cache import prepare_folder

    root = _folder_arg(name)
    size = parse_image_size(image_size)
    assert size is not None
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    started = time.perf_counter()
    with Progress(*columns, console=console, transient=False) as bar:
        task = None
        resumed_at: list[int] = []  # images already done when this run started (a resume)

        def progress(done: int, total: int) -> None:
            nonlocal task
            if task is None:
                task = bar.add_task("decoding", total=total, rate="")
                resumed_at.append(done)
            seconds = time.perf_counter() - started
            rate = f"{(done - resumed_at[0]) / seconds:.0f} images/s" if seconds > 0 else ""
            bar.update(task, completed=done, total=total, rate=rate)

        directory = prepare_folder(root, size, workers=workers, progress=progress, force=force)
    manifest = json.loads((directory / "manifest.json").read_text())
    skipped = manifest["skipped"]
    console.print(
        f"folder:{manifest['source']} @ {size[0]}x{size[1]}: {manifest['train']} train + "
        f"{manifest['test']} held-out images in {directory}"
        + (
            f"; {len(skipped)} unreadable file(s) skipped (listed in manifest.json)"
            if skipped
            else ""
        ),
        markup=False,
    )
    for item in skipped[:5]:
        console.print(f"  skipped {item['file']}: {item['reason']}", markup=False)


@data_app.command("clean")
def clean(
    name: str | None = typer.Argument(
        None, metavar="[folder:PATH|NAME]", help="Its caches only (a folder, or e.g. cifar10)."
    ),
    all_caches: bool = typer.Option(
        False, "--all", help="Remove every prepared cache.", rich_help_panel=DATA
    ),
) -> None:
    """Remove prepared caches (never anything outside the cache directory); prints each one."""
    from coatnet_nas.data.cache import clean_caches, prepared_root
    from coatnet_nas.data.sources import parse_name

    if (name is None) == (not all_caches):
        raise CoatnetError(
            "give folder:PATH or --all, or a data set name such as cifar10 (exactly one)."
        )
    if all_caches:
        removed = clean_caches()
    elif parse_name(name or "")[0] in ("fashion-mnist", "cifar10", "cifar100"):
        removed = clean_caches(kind=parse_name(name or "")[0])
    else:
        removed = clean_caches(_folder_arg(name or ""))
    for path in removed:
        console.print(f"removed {path}", markup=False)
    console.print(f"{len(removed)} prepared cache(s) removed from {prepared_root()}", markup=False)
