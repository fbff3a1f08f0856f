"""``coatnet build`` and ``coatnet validate``: specs in, models and profiles out."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.table import Table

from coatnet_nas._io import atomic_write_text, check_output_file
from coatnet_nas.cli.app import app, console, parse_image_size, print_json
from coatnet_nas.cli.errors import one_paragraph, user_message
from coatnet_nas.errors import CoatnetError
from coatnet_nas.limits import bounded
from coatnet_nas.presets import resolve_spec
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
    failed = 0
    for arg in specs:
        try:
            spec = resolve_spec(arg)
        except CoatnetError as exc:
            failed += 1
            _stderr(f"error: {bounded(one_paragraph(user_message(exc)))}")
            continue
        console.print(
            f"ok  {arg}: {spec.name} {spec.layout} depths={list(spec.depths)} "
            f"widths={list(spec.widths)} image={spec.image_size[0]}x{spec.image_size[1]}",
            markup=False,
        )
    if failed:
        if len(specs) > 1:
            _stderr(f"{failed} of {len(specs)} specs are invalid")
        raise typer.Exit(2)


def _stderr(line: str) -> None:
    """A line on stderr, after whatever stdout already holds (so piped output stays in order)."""
    sys.stdout.flush()
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


@app.command()
def build(
    spec_path: str = SpecArg,
    profile: bool = typer.Option(
        False, "--profile", help="Trace with fvcore: FLOPs/params per stage."
    ),
    estimate: bool = typer.Option(
        False, "--estimate", help="Closed-form params/FLOPs from the spec alone (no build)."
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print one JSON object instead of a table."
    ),
    image_size: str | None = typer.Option(
        None, "--image-size", help="Override, e.g. 256 or 256x192."
    ),
    write: Path | None = typer.Option(None, "--write", help="Write the normalized spec YAML here."),
    latency: bool = typer.Option(
        False,
        "--latency",
        help="Time the batch-1 forward (with --profile: in the profile); with --table: predict "
        "the latency per stage from a latency table instead (no model built).",
    ),
    table: Path | None = typer.Option(
        None, "--table", help="With --latency: a table from 'coatnet latency table'."
    ),
    measure: bool = typer.Option(
        False,
        "--measure",
        help="With --latency --table: also time the model end to end on the table's "
        "configuration (threads, batch, device), beside the prediction.",
    ),
    runtime: str | None = typer.Option(
        None,
        "--runtime",
        help="With --latency: also time the model in a deployment runtime: onnxruntime (the "
        "model exported to ONNX and checked first) or torch (eager).",
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
        _latency(spec, table, measure=measure, json_out=json_out, profile=profile,
                 estimate=estimate, runtime=runtime)  # fmt: skip
        return
    if estimate:
        from coatnet_nas.cost import estimate_cost

        cost = estimate_cost(spec)
        if json_out:
            print_json({"name": spec.name, "layout": spec.layout, **cost.to_dict()})
        else:
            _cost_table(spec, cost)
        if not profile:
            return
    from coatnet_nas.profile import profile_model

    if profile:
        result = profile_model(spec, latency=latency)
        if json_out:
            print_json(result.to_dict())
        else:
            _profile_table(result)
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


def _latency(
    spec: ModelSpec,
    table_path: Path | None,
    *,
    measure: bool,
    json_out: bool,
    profile: bool,
    estimate: bool,
    runtime: str | None = None,
) -> None:
    """Predicted (from a table) and/or measured latency, per stage beside the FLOPs."""
    from coatnet_nas.cost import estimate_cost
    from coatnet_nas.latency import LatencyTable, current_meta, latency_breakdown, measure_spec

    base: dict = {"name": spec.name, "layout": spec.layout}
    if profile:
        from coatnet_nas.profile import profile_model

        result = profile_model(spec)
        base = result.to_dict()
        if not json_out:
            _profile_table(result)
    elif estimate:
        base.update(estimate_cost(spec).to_dict())
    else:
        base["image_size"] = list(spec.image_size)
    predicted, measured, config = None, None, None
    if table_path is not None:
        table = LatencyTable.load(table_path)
        here = current_meta(table.meta.device, table.meta.threads, table.meta.batch)
        mismatch = {k: here.config()[k] for k in ("device_name", "torch_version")}
        if measure:  # timing here must happen on the table's own configuration
            table.check_matches(source=f"table {table_path}", **mismatch)
        elif any(v != table.meta.config()[k] for k, v in mismatch.items()):
            _stderr(
                f"note: {table_path} was measured on {table.meta.device_name} with torch "
                f"{table.meta.torch_version}; this machine has {mismatch['device_name']} and "
                f"torch {mismatch['torch_version']}: the prediction is for the table's machine"
            )
        predicted = latency_breakdown(spec, table)
        config = {k: v for k, v in table.meta.model_dump().items() if k in table.meta.config()}
        meta = table.meta
    else:  # --latency alone: time it here, as the profile did
        import torch

        meta = current_meta(threads=torch.get_num_threads())
        measure = runtime is None
    deployed = _runtime_latency(spec, runtime, meta) if runtime is not None else None
    if measure:
        measured = measure_spec(spec, meta, warmup=5, repeats=max(meta.repeats, 20)).median_s * 1e3
    cost = estimate_cost(spec)
    flops = {row.name: row.flops for row in cost.stages}
    stages = [
        {**vars(row), "flops": flops.get(row.name)}
        for row in (predicted.stages if predicted else ())
    ]
    report = {
        "predicted": predicted.total_ms if predicted else None,
        "measured": measured,
        "overhead_ms": predicted.overhead_ms if predicted else None,
        "stages": stages,
        "configuration": config,
        "runtime": deployed,
    }
    if json_out:
        print_json({**base, "latency_ms": report})
        return
    if estimate and not profile:
        _cost_table(spec, cost)
    if predicted is not None:
        _latency_table(spec, predicted, stages, table_path)
    if measured is not None:
        vs = f" (prediction {predicted.total_ms / measured - 1:+.1%})" if predicted else ""
        console.print(f"measured batch-{meta.batch} latency: {measured:.2f} ms{vs}", markup=False)
    if deployed is not None:
        console.print(
            f"{deployed['name']} batch-{meta.batch} latency ({meta.threads} thread(s)): "
            f"{deployed['measured']:.2f} ms (IQR {deployed['iqr_ms']:.2f} ms)",
            markup=False,
        )


def _runtime_latency(spec: ModelSpec, runtime: str, meta) -> dict:
    """The model's latency in a deployment runtime, on the same threads and batch."""
    from coatnet_nas.builder import build_model
    from coatnet_nas.export import runtime_latency

    if runtime not in ("onnxruntime", "torch"):
        raise CoatnetError(
            f"--runtime must be onnxruntime or torch, got {runtime[:40]!r}.", param="runtime"
        )
    stats = runtime_latency(
        build_model(spec).eval(), spec.image_size, batch=meta.batch, threads=meta.threads,
        runtime=runtime, repeats=max(meta.repeats, 20),
    )  # fmt: skip
    return {"name": runtime, "measured": stats.median_ms, "iqr_ms": stats.iqr_ms}


def _latency_table(spec: ModelSpec, predicted, stages: list[dict], table_path: Path) -> None:
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
            row["name"], row["type"], human(row["flops"] or 0), f"{row['ms']:.2f}",
            f"{row['ms'] / total:.0%}", str(row["measured_kinds"]), str(row["interpolated_kinds"]),
        )  # fmt: skip
    out.add_row("overhead", "model", "", f"{predicted.overhead_ms:.2f}",
                f"{predicted.overhead_ms / total:.0%}", "", "")  # fmt: skip
    out.add_section()
    flops = sum(r["flops"] or 0 for r in stages)
    out.add_row("total", "", human(flops), f"{total:.2f}", "", "", "", style="bold")
    console.print(out)


def _write_spec(spec: ModelSpec, path: Path, *, quiet: bool) -> None:
    """Write the normalized YAML atomically and say so (on stderr when stdout carries JSON)."""
    atomic_write_text(path, spec.to_yaml(), param="write")
    note = (
        "" if path.suffix in (".yaml", ".yml") else " (YAML, although the name has no .yaml suffix)"
    )
    line = f"wrote the normalized spec {spec.name} to {path}{note}"
    if quiet:
        _stderr(line)
    else:
        console.print(line, markup=False)


def _profile_table(result) -> None:
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


def _cost_table(spec: ModelSpec, cost) -> None:
    h, w = cost.image_size
    table = Table(title=f"{spec.name}  {spec.layout}  @ {h}x{w}  (closed-form estimate)")
    for col in ("stage", "type", "params", "FLOPs"):
        table.add_column(col, justify="left" if col in ("stage", "type") else "right")
    for row in cost.stages:
        table.add_row(row.name, row.type, human(row.params), human(row.flops))
    table.add_section()
    table.add_row("total", "", human(cost.params), human(cost.flops), style="bold")
    console.print(table)


@app.command()
def scale(
    spec_path: str = SpecArg,
    budget: str = typer.Option(
        ..., "--budget", help="FLOPs budget (MACs), e.g. 4GFLOPs, 500M, 4e9."
    ),
    max_params: str | None = typer.Option(None, "--max-params", help="Params budget, e.g. 30M."),
    vary: str = typer.Option("widths", "--vary", help="What to scale: widths, depths or both."),
    image_size: str | None = typer.Option(
        None, "--image-size", help="Resolution the budget applies at."
    ),
    write: Path | None = typer.Option(None, "--write", help="Write the fitted spec YAML here."),
    json_out: bool = typer.Option(
        False, "--json", help="Print one JSON object instead of a table."
    ),
) -> None:
    """Scale SPEC to land as close as possible under a FLOPs (and params) budget."""
    from coatnet_nas.cost import estimate_cost
    from coatnet_nas.scaling import binding_limit, fit_to_budget
    from coatnet_nas.units import parse_flops, parse_params

    flops = parse_flops(budget, what="--budget")
    params = parse_params(max_params, what="--max-params") if max_params is not None else None
    if vary not in ("widths", "depths", "both"):
        raise CoatnetError(f"--vary: expected widths, depths or both, got {vary!r}.")
    if write is not None:
        check_output_file(write, param="write")
    spec = _load(spec_path, image_size)
    fitted = fit_to_budget(spec, flops=flops, params=params, vary=vary)  # type: ignore[arg-type]
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
