"""The rich tables ``coatnet build`` prints: profile, closed-form cost and predicted latency."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from coatnet_nas.cli.app import console
from coatnet_nas.spec import ModelSpec
from coatnet_nas.units import human


def profile_table(result) -> None:
    h, w = result.image_size
    table = Table(
        title=f"{result.name}  {result.layout}  @ {h}x{w}",
        caption="FLOPs are multiply-accumulates (fvcore convention); attention included",
    )
    for col in ("stage", "type", "depth", "width", "output", "params", "FLOPs", "activations"):
        table.add_column(col, justify="left" if col in ("stage", "type") else "right")
    for row in result.stages:
        rh, rw = row.resolution
        table.add_row(
            row.name,
            row.type,
            str(row.depth),
            str(row.width),
            f"{rh}x{rw}",
            human(row.params),
            human(row.flops),
            human(row.activations),
        )
    table.add_section()
    table.add_row(
        "total",
        "",
        "",
        "",
        "",
        human(result.params),
        human(result.flops),
        human(result.activations),
        style="bold",
    )
    console.print(table)
    if result.latency_ms is not None:
        console.print(f"batch-1 latency: {result.latency_ms:.1f} ms", markup=False)


def cost_table(spec: ModelSpec, cost) -> None:
    h, w = cost.image_size
    table = Table(title=f"{spec.name}  {spec.layout}  @ {h}x{w}  (closed-form estimate)")
    for col in ("stage", "type", "params", "FLOPs"):
        table.add_column(col, justify="left" if col in ("stage", "type") else "right")
    for row in cost.stages:
        table.add_row(row.name, row.type, human(row.params), human(row.flops))
    table.add_section()
    table.add_row("total", "", human(cost.params), human(cost.flops), style="bold")
    console.print(table)


def latency_table(spec: ModelSpec, predicted, stages: list[dict], table_path: Path) -> None:
    h, w = spec.image_size
    out = Table(
        title=f"{spec.name}  {spec.layout}  @ {h}x{w}  (latency predicted from {table_path})",
        caption="exact = block kinds measured in the table; interpolated = from its regressors",
    )
    for col in ("stage", "type", "FLOPs", "ms", "share", "exact", "interpolated"):
        out.add_column(col, justify="left" if col in ("stage", "type") else "right")
    total = predicted.total_ms
    for row in stages:
        out.add_row(
            row["name"],
            row["type"],
            human(row["flops"] or 0),
            f"{row['ms']:.2f}",
            f"{row['ms'] / total:.0%}",
            str(row["measured_kinds"]),
            str(row["interpolated_kinds"]),
        )
    out.add_row(
        "overhead",
        "model",
        "",
        f"{predicted.overhead_ms:.2f}",
        f"{predicted.overhead_ms / total:.0%}",
        "",
        "",
    )
    out.add_section()
    flops = sum(r["flops"] or 0 for r in stages)
    out.add_row("total", "", human(flops), f"{total:.2f}", "", "", "", style="bold")
    console.print(out)
