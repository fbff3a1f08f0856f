"""``coatnet build --latency``: renders the library's :class:`LatencyReport` (predicted from a
table, measured here) per stage beside the FLOPs, plus a deployment runtime's latency. The model
is built once and shared by the profile, the timing and the runtime."""

from __future__ import annotations

from pathlib import Path

from coatnet_nas.cli.app import console, print_json, print_stderr
from coatnet_nas.cli.build_tables import cost_table, latency_table, profile_table
from coatnet_nas.spec import ModelSpec


def show_latency(
    spec: ModelSpec,
    table_path: Path | None,
    *,
    measure: bool,
    json_out: bool,
    profile: bool,
    estimate: bool,
    runtime: str | None = None,
    spec_arg: str | None = None,
) -> None:
    """Predicted (from a table) and/or measured latency, per stage beside the FLOPs."""
    from coatnet_nas.builder import build_model
    from coatnet_nas.cost import estimate_cost
    from coatnet_nas.latency import latency_report

    model = build_model(spec, initialize=False).eval()
    base = _base(spec, model, profile=profile, estimate=estimate, json_out=json_out)
    timed = measure or (table_path is None and runtime is None)
    report = latency_report(spec, table_path, measure=timed, model=model)
    deployed = _runtime_latency(model, spec, runtime, report.meta) if runtime else None
    if report.machine_note:
        print_stderr(f"note: {report.machine_note}")
    if report.coverage:
        print_stderr(
            f"note: {report.coverage}, so blocks not in it are interpolated from its regressors; "
            "expect a larger error. For a closer prediction measure this spec: coatnet latency "
            f"table {spec_arg or 'SPEC'} --image-size {spec.image_size[0]} --out NEW.json"
        )
    if json_out:
        print_json({**base, "latency_ms": {**report.to_dict(), "runtime": deployed}})
        return
    if estimate and not profile:
        cost_table(spec, estimate_cost(spec))
    if report.predicted is not None:
        latency_table(spec, report.predicted, report.stages, table_path)
    _print_measured(report, deployed)


def _base(spec: ModelSpec, model, *, profile: bool, estimate: bool, json_out: bool) -> dict:  # type: ignore[no-untyped-def]
    """The JSON head: the profile (printed too), the closed-form cost, or the size alone."""
    if profile:
        from coatnet_nas.profile import profile_model

        result = profile_model(model)
        if not json_out:
            profile_table(result)
        return result.to_dict()
    if estimate:
        from coatnet_nas.cost import estimate_cost

        return {"name": spec.name, "layout": spec.layout, **estimate_cost(spec).to_dict()}
    return {"name": spec.name, "layout": spec.layout, "image_size": list(spec.image_size)}


def _print_measured(report, deployed: dict | None) -> None:  # type: ignore[no-untyped-def]
    meta, predicted, measured = report.meta, report.predicted, report.measured_ms
    if measured is not None:
        vs = f" (prediction {predicted.total_ms / measured - 1:+.1%})" if predicted else ""
        console.print(f"measured batch-{meta.batch} latency: {measured:.2f} ms{vs}", markup=False)
    if deployed is not None:
        console.print(
            f"{deployed['name']} batch-{meta.batch} latency ({meta.threads} thread(s)): "
            f"{deployed['measured']:.2f} ms (IQR {deployed['iqr_ms']:.2f} ms)",
            markup=False,
        )


def _runtime_latency(model, spec: ModelSpec, runtime: str, meta) -> dict:  # type: ignore[no-untyped-def]
    """The model's latency in a deployment runtime, on the same threads and batch."""
    from coatnet_nas.export import runtime_latency
    from coatnet_nas.export.formats import parse_runtime

    name = parse_runtime(runtime).value
    stats = runtime_latency(
        model.cpu(),
        spec.image_size,
        batch=meta.batch,
        threads=meta.threads,
        runtime=name,
        repeats=max(meta.repeats, 20),
    )
    return {"name": name, "measured": stats.median_ms, "iqr_ms": stats.iqr_ms}
