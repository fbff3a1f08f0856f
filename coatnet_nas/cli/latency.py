"""``coatnet latency table``: measure a latency table for a space (or specs) on this device."""

from __future__ import annotations

import time
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

from coatnet_nas.cli.app import app, console, parse_image_size, print_json
from coatnet_nas.errors import CoatnetError

latency_app = typer.Typer(
    help="Per-block latency tables measured on this device, for `coatnet build --latency "
    "--table` and latency-aware search.",
    no_args_is_help=True,
)
app.add_typer(latency_app, name="latency")

# Calibration models are drawn with this seed unless told otherwise; evaluations (the benchmark)
# draw with other seeds, so the correction is never fitted to the specs it is judged on.
CALIBRATION_SEED = 10_000


@latency_app.command("table")
def table(
    out: Path = typer.Option(
        ...,
        "--out",
        help="Write the table here (JSON); an existing table of the same configuration is resumed.",
    ),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
    threads: int = typer.Option(1, "--threads", help="torch intra-op threads to measure with."),
    batch: int = typer.Option(1, "--batch", help="Batch size to measure with."),
    space_path: Path | None = typer.Option(
        None,
        "--space",
        help="Search space YAML whose blocks to measure (default: the bundled "
        "default space, unless --spec is given).",
    ),
    specs: list[str] = typer.Option(
        [], "--spec", help="Measure the blocks of this spec too (repeatable; a file or preset)."
    ),
    image_size: str | None = typer.Option(
        None, "--image-size", help="Resolution to measure at (default: the space's target)."
    ),
    width_mult: float = typer.Option(
        1.0, "--width-mult", help="Shrink widths first, as a proxy does (e.g. 0.25)."
    ),
    calibration: int = typer.Option(
        24,
        "--calibration",
        help="Whole models from the space timed end to end to fit the model-level correction.",
    ),
    seed: int = typer.Option(CALIBRATION_SEED, "--seed", help="Seed of the calibration draws."),
    warmup: int = typer.Option(3, "--warmup", help="Untimed runs before each measurement."),
    repeats: int = typer.Option(20, "--repeats", help="Timed runs per measurement (median)."),
    channels_last: bool = typer.Option(
        False, "--channels-last", help="Measure channels-last models and inputs."
    ),
    recalibrate: bool = typer.Option(
        False,
        "--recalibrate",
        help="Time the table's calibration models again and re-fit its correction (when this "
        "machine's speed drifted since the table was built); measured kinds are kept.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary, no progress."),
) -> None:
    """Measure every block kind the space (or --spec) can produce, plus a few whole models."""
    from coatnet_nas.latency import build_table, kinds_of_specs, sample_specs, space_kinds
    from coatnet_nas.presets import resolve_spec
    from coatnet_nas.scaling import scale_spec
    from coatnet_nas.search import load_space

    if width_mult <= 0:
        raise CoatnetError(f"width_mult must be > 0, got {width_mult}.", param="width_mult")
    if calibration < 0:
        raise CoatnetError(f"calibration must be >= 0, got {calibration}.", param="calibration")
    size = parse_image_size(image_size)

    def shrink(spec):
        return scale_spec(spec, width_mult)

    kinds, calib, source = [], [], []
    given = [resolve_spec(s) for s in specs]
    if given:
        sized = [shrink(s.with_image_size(size) if size else s) for s in given]
        kinds += kinds_of_specs(sized)
        source.append(f"{len(sized)} spec(s)")
    if space_path is not None or not given:
        space = load_space(space_path)
        kinds += space_kinds(space, size, shrink)
        calib += sample_specs(space, calibration, seed, size, shrink)
        source.append(f"space {space.name}")
    elif not calib:
        calib = sized[:calibration]
    if recalibrate:
        calib = _calibration_of(out) or calib
    started = time.perf_counter()
    kwargs = dict(
        out=out, device=device, threads=threads, batch=batch, channels_last=channels_last,
        warmup=warmup, repeats=repeats, image_size=size, recalibrate=recalibrate,
        source=" + ".join(source) + (f", width x{width_mult:g}" if width_mult != 1 else ""),
    )  # fmt: skip
    if json_out:
        result = build_table(kinds, calib, **kwargs)
    else:
        columns = (
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[what]}"),
        )  # fmt: skip
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("latency table", total=None, what="")

            def progress(done: int, total: int, what: str) -> None:
                bar.update(task, completed=done, total=max(total, 1), what=what[:60])

            result = build_table(kinds, calib, on_progress=progress, **kwargs)
    seconds = time.perf_counter() - started
    summary = {
        "out": str(out),
        "kinds": len(result.entries),
        "calibration_models": len(result.calibration),
        "seconds": seconds,
        "correction": result.correction.model_dump(),
        "meta": result.meta.model_dump(mode="json"),
    }
    if json_out:
        print_json(summary)
        return
    corr = result.correction
    console.print(
        f"wrote {out}: {len(result.entries)} block kinds and {len(result.calibration)} whole "
        f"models on {result.meta.device} ({result.meta.device_name}), {result.meta.threads} "
        f"thread(s), batch {result.meta.batch}, in {seconds:.0f} s; model correction "
        + ", ".join(f"{g} x{v:.3f}" for g, v in sorted(corr.scales.items()))
        + f" + {corr.offset_ms:.2f} ms",
        markup=False,
    )


def _calibration_of(out: Path) -> list:
    """The calibration models of the table at ``out`` (to time them again), if there is one."""
    from coatnet_nas.latency import LatencyTable
    from coatnet_nas.spec import spec_from_dict

    if not out.exists():
        raise CoatnetError(
            f"out {out}: no table to recalibrate; build one first (without --recalibrate).",
            param="out",
        )
    table = LatencyTable.load(out, param="out")
    return [spec_from_dict(c.spec) for c in table.calibration.values()]
