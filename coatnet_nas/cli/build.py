"""``coatnet build`` and ``coatnet validate``: specs in, models and profiles out."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError
from rich.table import Table

from coatnet_nas._io import atomic_write_text, check_output_file
from coatnet_nas.cli.app import (
    OUTPUT,
    RUNTIME,
    SHRINK,
    app,
    console,
    parse_image_size,
    print_json,
    print_stderr,
)
from coatnet_nas.cli.build_latency import show_latency
from coatnet_nas.cli.build_tables import cost_table, profile_table
from coatnet_nas.cli.errors import one_paragraph, user_message
from coatnet_nas.cli.options import Budget, MaxParams, choice
from coatnet_nas.errors import CoatnetError
from coatnet_nas.export.formats import DeployRuntime, parse_runtime
from coatnet_nas.limits import bounded
from coatnet_nas.presets import resolve_spec
from coatnet_nas.scaling import Vary
from coatnet_nas.spec import ModelSpec, SpecProblems, validation_reason
from coatnet_nas.units import human

SpecArg = typer.Argument(
    ...,
    metavar="SPEC",
    help="Model spec YAML (compact or explicit form), or a bundled preset name such as "
    "coatnet0 or layouts/cctt (an existing file of that name wins).",
)


def _load(arg: str, image_size: str | None) -> ModelSpec:
    spec = resolve_spec(arg)
    size = parse_image_size(image_size)
    if size is not None:
        try:
            spec = spec.with_image_size(size)
        except ValidationError as exc:  # the override breaks the spec; name the option
            raise CoatnetError(f"--image-size {image_size}: {_reason(exc)}.") from None
    return spec


def _reason(exc: ValidationError) -> str:
    """The cross-check's own sentences without their field prefix (the option is named)."""
    errors = exc.errors(include_url=False)
    cause = (errors[0].get("ctx") or {}).get("error") if errors else None
    if isinstance(cause, SpecProblems):
        return "; ".join(dict.fromkeys(msg for _, msg in cause.problems))
    return validation_reason(exc)


@app.command()
def validate(
    specs: list[str] = typer.Argument(
        ..., metavar="SPEC...", help="Spec files (or preset names) to check."
    ),
) -> None:
    """Check specs without building a model: one line per spec, exit 2 if any is invalid."""
    command = typer.main.get_command(app).commands["validate"]  # type: ignore[attr-defined]
    failed = 0
    for arg in specs:
        try:
            spec = resolve_spec(arg)
        except CoatnetError as exc:
            failed += 1
            print_stderr(f"error: {bounded(one_paragraph(user_message(exc, command)))}")
            continue
        console.print(
            f"ok  {arg}: {spec.name} {spec.layout} depths={list(spec.depths)} "
            f"widths={list(spec.widths)} image={spec.image_size[0]}x{spec.image_size[1]}",
            markup=False,
        )
    if failed:
        if len(specs) > 1:
            print_stderr(f"{failed} of {len(specs)} specs are invalid")
        raise typer.Exit(2)


@app.command()
def build(
    spec_path: str = SpecArg,
    profile: bool = typer.Option(
        False,
        "--profile",
        help="Trace with fvcore: FLOPs/params per stage.",
        rich_help_panel=OUTPUT,
    ),
    estimate: bool = typer.Option(
        False,
        "--estimate",
        help="Closed-form params/FLOPs from the spec alone (no build).",
        rich_help_panel=OUTPUT,
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print one JSON object instead of a table.", rich_help_panel=OUTPUT
    ),
    image_size: str | None = typer.Option(
        None, "--image-size", help="Override, e.g. 256 or 256x192.", rich_help_panel=SHRINK
    ),
    write: Path | None = typer.Option(
        None, "--write", help="Write the normalized spec YAML here.", rich_help_panel=OUTPUT
    ),
    latency: bool = typer.Option(
        False,
        "--latency",
        help="Time the batch-1 forward (with --profile: in the profile); with --table: predict "
        "the latency per stage from a latency table instead (no model built).",
        rich_help_panel=RUNTIME,
    ),
    table: Path | None = typer.Option(
        None,
        "--table",
        help="With --latency: a table from 'coatnet latency table'.",
        rich_help_panel=RUNTIME,
    ),
    measure: bool = typer.Option(
        False,
        "--measure",
        help="With --latency --table: also time the model end to end on the table's "
        "configuration (threads, batch, device), beside the prediction.",
        rich_help_panel=RUNTIME,
    ),
    runtime: DeployRuntime | None = typer.Option(
        None,
        "--runtime",
        help="With --latency: also time the model in a deployment runtime: onnxruntime (the "
        "model exported to ONNX and checked first) or torch (eager).",
        **choice(DeployRuntime, "runtime", parse_runtime),
        rich_help_panel=RUNTIME,
    ),
) -> None:
    """Build a model from SPEC; optionally profile it, estimate its cost or normalize the spec."""
    if write is not None:
        check_output_file(write, param="write")
    if (table is not None or measure or runtime is not None) and not latency:
        raise CoatnetError("--table, --measure and --runtime go with --latency (add --latency).")
    if measure and table is None:
        raise CoatnetError("--measure compares with a prediction: give --table TABLE.json.")
    spec = _load(spec_path, image_size)
    if write is not None:
        _write_spec(spec, write, quiet=json_out)
    if latency and (table is not None or runtime is not None or not profile):
        show_latency(
            spec,
            table,
            measure=measure,
            json_out=json_out,
            profile=profile,
            estimate=estimate,
            runtime=runtime,
            spec_arg=spec_path,
        )
        return
    if estimate:
        from coatnet_nas.cost import estimate_cost

        cost = estimate_cost(spec)
        if json_out:
            print_json({"name": spec.name, "layout": spec.layout, **cost.to_dict()})
        else:
            cost_table(spec, cost)
        if not profile:
            return
    from coatnet_nas.profile import profile_model

    if profile:
        result = profile_model(spec, latency=latency)
        if json_out:
            print_json(result.to_dict())
        else:
            profile_table(result)
        return
    from coatnet_nas.builder import build_model

    model = build_model(spec)
    params = sum(p.numel() for p in model.parameters())
    if json_out:
        print_json({"name": spec.name, "layout": spec.layout, "params": params})
    else:
        console.print(
            f"built {spec.name}: {spec.layout}, {human(params)} parameters "
            f"(add --profile for FLOPs per stage)",
            markup=False,
        )


def _write_spec(spec: ModelSpec, path: Path, *, quiet: bool) -> None:
    """Write the normalized YAML atomically and say so (on stderr when stdout carries JSON)."""
    atomic_write_text(path, spec.to_yaml(), param="write")
    note = (
        "" if path.suffix in (".yaml", ".yml") else " (YAML, although the name has no .yaml suffix)"
    )
    line = f"wrote the normalized spec {spec.name} to {path}{note}"
    if quiet:
        print_stderr(line)
    else:
        console.print(line, markup=False)


@app.command()
def scale(
    spec_path: str = SpecArg,
    flops: Budget = ...,  # type: ignore[assignment]
    params: MaxParams = None,
    vary: Vary = typer.Option(
        Vary.WIDTHS,
        "--vary",
        help="What to scale.",
        **choice(Vary, "vary"),
        rich_help_panel=SHRINK,
    ),
    image_size: str | None = typer.Option(
        None, "--image-size", help="Resolution the budget applies at.", rich_help_panel=SHRINK
    ),
    write: Path | None = typer.Option(
        None, "--write", help="Write the fitted spec YAML here.", rich_help_panel=OUTPUT
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print one JSON object instead of a table.", rich_help_panel=OUTPUT
    ),
) -> None:
    """Scale SPEC to land as close as possible under a FLOPs (and params) budget."""
    from coatnet_nas.cost import estimate_cost
    from coatnet_nas.scaling import binding_limit, fit_to_budget
    from coatnet_nas.units import parse_flops, parse_params

    flops = parse_flops(flops, what="flops")
    params = parse_params(params, what="params") if params is not None else None
    if write is not None:
        check_output_file(write, param="write")
    spec = _load(spec_path, image_size)
    fitted = fit_to_budget(spec, flops=flops, params=params, vary=vary)
    if write is not None:
        atomic_write_text(write, fitted.to_yaml(), param="write")
    before, after = estimate_cost(spec), estimate_cost(fitted)
    bound = binding_limit(fitted, flops, params)
    if json_out:
        print_json(
            {
                "name": fitted.name,
                "layout": fitted.layout,
                "depths": list(fitted.depths),
                "widths": list(fitted.widths),
                "params": after.params,
                "flops": after.flops,
                "budget_flops": flops,
                "budget_params": params,
                "bound_by": bound,
                "written": str(write) if write else None,
            }
        )
        return
    if bound == "params":
        title = (
            f"{spec.name} scaled under {human(params or 0)} params ({vary}): the params cap "
            f"bound it at {human(after.flops)} FLOPs, below the {human(flops)} FLOPs budget"
        )
    else:
        title = f"{spec.name} scaled to {human(flops)} FLOPs ({vary})"
    table = Table(title=title)
    for col in ("", "depths", "widths", "params", "FLOPs"):
        table.add_column(col, justify="left" if col in ("", "depths", "widths") else "right")
    for label, s, c in (("original", spec, before), ("fitted", fitted, after)):
        table.add_row(
            label, str(list(s.depths)), str(list(s.widths)), human(c.params), human(c.flops)
        )
    console.print(table)
    if write is not None:
        console.print(f"wrote {write}", markup=False)
