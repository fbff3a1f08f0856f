"""``coatnet latency table``: measure a latency table for a space (or specs) on this device."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from coatnet_nas.cli.app import (
    OUTPUT,
    RUNTIME,
    SHRINK,
    app,
    console,
    parse_image_size,
    print_json,
    renamed,
)
from coatnet_nas.cli.options import Device, ImageSize, Json, WidthMult
from coatnet_nas.latency.request import CALIBRATION_SEED

latency_app = typer.Typer(
    help="Per-block latency tables measured on this device, for `coatnet build --latency "
    "--table` and latency-aware search.",
    no_args_is_help=True,
)
app.add_typer(latency_app, name="latency")


@latency_app.command("table", cls=renamed(spec="", warmup="--warmup-runs", batch="--batch-size"))
def table(
    specs: list[str] = typer.Argument(
        None,
        metavar="SPEC",
        help="Measure the blocks of these specs (files or presets); without any, the space's.",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Write the table here (JSON); an existing table of the same configuration is resumed.",
        rich_help_panel=OUTPUT,
    ),
    device: Device = "auto",
    threads: int = typer.Option(
        1, "--threads", help="torch intra-op threads to measure with.", rich_help_panel=RUNTIME
    ),
    batch: int = typer.Option(
        1, "--batch-size", metavar="N", help="Batch size to measure with.", rich_help_panel=RUNTIME
    ),
    space_path: Path | None = typer.Option(
        None,
        "--space",
        help="Search space YAML whose blocks to measure (default: the bundled "
        "default space, unless SPEC is given).",
        rich_help_panel=SHRINK,
    ),
    image_size: ImageSize = None,
    width_mult: WidthMult = 1.0,
    calibration: int = typer.Option(
        24,
        "--calibration",
        help="Whole models from the space timed end to end to fit the model-level correction.",
        rich_help_panel=RUNTIME,
    ),
    seed: int = typer.Option(
        CALIBRATION_SEED, "--seed", help="Seed of the calibration draws.", rich_help_panel=RUNTIME
    ),
    warmup: int = typer.Option(
        3,
        "--warmup-runs",
        metavar="N",
        help="Untimed runs before each measurement.",
        rich_help_panel=RUNTIME,
    ),
    repeats: int = typer.Option(
        20, "--repeats", help="Timed runs per measurement (median).", rich_help_panel=RUNTIME
    ),
    channels_last: bool = typer.Option(
        False,
        "--channels-last",
        help="Measure channels-last models and inputs.",
        rich_help_panel=RUNTIME,
    ),
    recalibrate: bool = typer.Option(
        False,
        "--recalibrate",
        help="Time the table's calibration models again and re-fit its correction (when this "
        "machine's speed drifted since the table was built); measured kinds are kept.",
        rich_help_panel=OUTPUT,
    ),
    json_out: Json = False,
) -> None:
    """Measure every block kind the space (or SPEC) can produce, plus a few whole models."""
    from coatnet_nas.latency.request import TableRequest
    from coatnet_nas.presets import resolve_spec
    from coatnet_nas.scaling import check_multiplier, shrink_spec
    from coatnet_nas.search import load_space

    given = [resolve_spec(s) for s in specs or ()]
    space = load_space(space_path) if space_path is not None or not given else None
    check_multiplier("width_mult", width_mult)  # fails before anything is measured
    request = TableRequest(
        out,
        given,
        space,
        device,
        threads,
        batch,
        parse_image_size(image_size),
        partial(shrink_spec, width_mult=width_mult),
        _label(width_mult),
        calibration,
        seed,
        warmup,
        repeats,
        channels_last,
        recalibrate,
    )
    started = time.perf_counter()
    if json_out:
        result = request.run()
    else:
        with Progress(*_COLUMNS, console=console, transient=False) as bar:
            task = bar.add_task("latency table", total=None, what="")

            def progress(done: int, total: int, what: str) -> None:
                bar.update(task, completed=done, total=max(total, 1), what=what[:60])

            result = request.run(progress)
    _show(result, out, time.perf_counter() - started, json_out)


def _label(width_mult: float) -> str:
    return f"width x{width_mult:g}" if width_mult != 1 else ""


_COLUMNS = (
    TextColumn("{task.description}"),
    BarColumn(),
    MofNCompleteColumn(),
    TimeElapsedColumn(),
    TimeRemainingColumn(),
    TextColumn("{task.fields[what]}"),
)


def _show(result, out: Path, seconds: float, json_out: bool) -> None:  # type: ignore[no-untyped-def]
    if json_out:
        print_json(
            {
                "out": str(out),
                "kinds": len(result.entries),
                "calibration_models": len(result.calibration),
                "seconds": seconds,
                "correction": result.correction.model_dump(),
                "meta": result.meta.model_dump(mode="json"),
            }
        )
        return
    corr, meta = result.correction, result.meta
    console.print(
        f"wrote {out}: {len(result.entries)} block kinds and {len(result.calibration)} whole "
        f"models on {meta.device} ({meta.device_name}), {meta.threads} "
        f"thread(s), batch {meta.batch}, in {seconds:.0f} s; model correction "
        + ", ".join(f"{g} x{v:.3f}" for g, v in sorted(corr.scales.items()))
        + f" + {corr.offset_ms:.2f} ms",
        markup=False,
    )
