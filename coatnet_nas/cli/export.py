"""``coatnet export``: one checked deployment file (ONNX, TorchScript, torch.export) per call."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from coatnet_nas.cli.app import app, console, print_json
from coatnet_nas.cli.build import SpecArg, _load
from coatnet_nas.units import human


@app.command()
def export(
    spec_path: str = SpecArg,
    out: Path = typer.Option(..., "--out", metavar="FILE", help="The file to write."),
    fmt: str | None = typer.Option(
        None,
        "--format",
        metavar="FORMAT",
        help="onnx, torchscript or exported (.pt2); default: from the --out suffix, else onnx.",
    ),
    weights: Path | None = typer.Option(
        None,
        "--weights",
        metavar="CKPT",
        help="Checkpoint whose weights to export (coatnet train --save).",
    ),
    image_size: str | None = typer.Option(
        None, "--image-size", help="Export at this size, e.g. 384 or 256x192 (tables resized)."
    ),
    batch: int = typer.Option(
        1, "--batch", metavar="N", help="Batch of the check (it also runs N+1: batch is dynamic)."
    ),
    opset: int | None = typer.Option(
        None, "--opset", metavar="N", help="ONNX opset (18-23; default: the exporter's)."
    ),
    no_check: bool = typer.Option(
        False, "--no-check", help="Skip running the file against PyTorch (not recommended)."
    ),
    atol: float = typer.Option(
        1e-4, "--atol", metavar="TOL", help="Largest allowed absolute difference from PyTorch."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON report."),
) -> None:
    """Export SPEC (with --weights) to a file that runs without coatnet-nas, checked numerically."""
    from coatnet_nas._io import check_output_file
    from coatnet_nas.export.api import export_model
    from coatnet_nas.export.formats import ExportFormat, parse_format

    chosen = parse_format(fmt) if fmt is not None else ExportFormat.from_path(out)
    check_output_file(out, param="out")  # before any model is built
    spec = _load(spec_path, image_size)
    status = contextlib.nullcontext() if json_out else console.status(f"exporting {spec.name}")
    with status:  # a spinner on a terminal; nothing in --json output or a pipe
        report = export_model(
            spec, chosen or ExportFormat.ONNX, out, weights=weights, batch=batch, opset=opset,
            check=not no_check, atol=atol,
        )  # fmt: skip
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
