"""``coatnet export``: one checked deployment file (ONNX, TorchScript, torch.export) per call."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from coatnet_nas.cli.app import OUTPUT, RUNTIME, app, console, print_json, print_stderr, renamed
from coatnet_nas.cli.options import ImageSize, Json, choice
from coatnet_nas.export.formats import ExportFormat, parse_format
from coatnet_nas.units import human


@app.command(cls=renamed(batch="--batch-size"))
def export(
    source: str = typer.Argument(
        ...,
        metavar="SPEC|CKPT",
        help="Model spec YAML or preset name, or a checkpoint from 'coatnet train --save' "
        "(exported with its own spec, classes and image size).",
    ),
    out: Path = typer.Option(
        ..., "--out", metavar="FILE", help="The file to write.", rich_help_panel=OUTPUT
    ),
    format: ExportFormat | None = typer.Option(
        None,
        "--format",
        help="onnx, torchscript or exported (.pt2); default: from the --out suffix, else onnx.",
        rich_help_panel=OUTPUT,
        **choice(ExportFormat, "format", parse_format),
    ),
    weights: Path | None = typer.Option(
        None,
        "--weights",
        metavar="CKPT",
        help="With SPEC: the checkpoint whose weights to export (its classes and image size "
        "are taken when they are the only difference).",
        rich_help_panel=RUNTIME,
    ),
    image_size: ImageSize = None,
    batch: int = typer.Option(
        1,
        "--batch-size",
        metavar="N",
        help="Batch of the check (it also runs N+1: batch is dynamic).",
        rich_help_panel=RUNTIME,
    ),
    opset: int | None = typer.Option(
        None,
        "--opset",
        metavar="N",
        help="ONNX opset (18-23; default: the exporter's).",
        rich_help_panel=RUNTIME,
    ),
    no_check: bool = typer.Option(
        False,
        "--no-check",
        help="Skip running the file against PyTorch (not recommended).",
        rich_help_panel=RUNTIME,
    ),
    atol: float = typer.Option(
        1e-4,
        "--atol",
        metavar="TOL",
        help="Largest allowed absolute difference from PyTorch.",
        rich_help_panel=RUNTIME,
    ),
    json_out: Json = False,
) -> None:
    """Export SPEC or a checkpoint to a checked file that runs without coatnet-nas."""
    from coatnet_nas._io import check_output_file
    from coatnet_nas.export.api import export_model
    from coatnet_nas.export.source import export_source

    chosen = format or ExportFormat.from_path(out)
    check_output_file(out, param="out")  # before any model is built
    what = export_source(source, weights=weights, image_size=image_size)
    if what.note is not None:
        print_stderr(f"note: {what.note}")
    spec = what.spec
    status = contextlib.nullcontext() if json_out else console.status(f"exporting {spec.name}")
    with status:  # a spinner on a terminal; nothing in --json output or a pipe
        report = export_model(
            spec,
            chosen or ExportFormat.ONNX,
            out,
            weights=what.weights,
            batch=batch,
            opset=opset,
            check=not no_check,
            atol=atol,
        )
    if json_out:
        print_json(report.to_dict())
        return
    h, w = report.image_size
    details = [f"{report.format.value} for {report.format.runtime}", f"{h}x{w}", "dynamic batch"]
    if report.opset is not None:
        details.append(f"opset {report.opset}")
    console.print(
        f"wrote {report.path} ({human(report.bytes)}B; {', '.join(details)}) in "
        f"{report.seconds:.1f} s",
        markup=False,
    )
    if report.max_abs_diff is None:
        console.print("not checked against PyTorch (--no-check)", markup=False)
    else:
        batches = " and ".join(map(str, report.check_batches))
        console.print(
            f"max abs diff vs PyTorch {report.max_abs_diff:.3g} (tolerance {report.atol:g}; "
            f"{report.max_rel_diff:.3g} of the output's scale) on random batches of {batches}",
            markup=False,
        )
