"""``coatnet build`` and ``coatnet validate``: specs in, models and profiles out."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from coatnet_nas.cli.app import app, console, parse_image_size, print_json
from coatnet_nas.errors import CoatnetError
from coatnet_nas.spec import ModelSpec, load_spec
from coatnet_nas.units import human

SpecArg = typer.Argument(..., metavar="SPEC", help="Model spec YAML (compact or explicit form).")


def _load(path: Path, image_size: str | None) -> ModelSpec:
    spec = load_spec(path)
    size = parse_image_size(image_size)
    if size is not None:
        try:
            spec = spec.with_image_size(size)
        except ValueError as exc:  # pydantic error for the override; name the option
            raise CoatnetError(f"--image-size {image_size}: {_first_error(exc)}") from None
    return spec


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        ctx = (errors()[0].get("ctx") or {}).get("error")
        return str(ctx) if ctx else errors()[0]["msg"]
    return str(exc)


@app.command()
def validate(specs: list[Path] = typer.Argument(..., help="Spec files to check.")) -> None:
    """Check spec files without building a model (exit 2 on the first invalid one)."""
    for path in specs:
        spec = load_spec(path)
        console.print(
            f"ok  {path}: {spec.name} {spec.layout} depths={list(spec.depths)} "
            f"widths={list(spec.widths)} image={spec.image_size[0]}x{spec.image_size[1]}",
            markup=False,
        )


@app.command()
def build(
    spec_path: Path = SpecArg,
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
    latency: bool = typer.Option(False, "--latency", help="With --profile: time batch-1 forward."),
) -> None:
    """Build a model from SPEC; optionally profile it, estimate its cost or normalize the spec."""
    spec = _load(spec_path, image_size)
    if write is not None:
        _write_spec(spec, write)
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


def _write_spec(spec: ModelSpec, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(spec.to_yaml(), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise CoatnetError(f"--write {path}: cannot write ({exc.strerror}).") from None
    if path.suffix not in (".yaml", ".yml"):
        console.print(f"note: wrote YAML to {path} (no .yaml suffix)", markup=False)


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
    spec_path: Path = SpecArg,
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
    from coatnet_nas.scaling import fit_to_budget
    from coatnet_nas.units import parse_flops, parse_params

    flops = parse_flops(budget, what="--budget")
    params = parse_params(max_params, what="--max-params") if max_params is not None else None
    if vary not in ("widths", "depths", "both"):
        raise CoatnetError(f"--vary: expected widths, depths or both, got {vary!r}.")
    spec = _load(spec_path, image_size)
    fitted = fit_to_budget(spec, flops=flops, params=params, vary=vary)  # type: ignore[arg-type]
    if write is not None:
        _write_spec(fitted, write)
    before, after = estimate_cost(spec), estimate_cost(fitted)
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
                "written": str(write) if write else None,
            }
        )
        return
    table = Table(title=f"{spec.name} scaled to {human(flops)} FLOPs ({vary})")
    for col in ("", "depths", "widths", "params", "FLOPs"):
        table.add_column(col, justify="left" if col in ("", "depths", "widths") else "right")
    for label, s, c in (("original", spec, before), ("fitted", fitted, after)):
        table.add_row(
            label, str(list(s.depths)), str(list(s.widths)), human(c.params), human(c.flops)
        )
    console.print(table)
    if write is not None:
        console.print(f"wrote {write}", markup=False)
