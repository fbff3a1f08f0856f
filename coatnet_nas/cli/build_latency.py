"""``coatnet build --latency``: predicted latency from a table, measured here, or measured in a
deployment runtime, per stage beside the FLOPs."""

from __future__ import annotations

from pathlib import Path

from coatnet_nas.cli.app import console, print_json, print_stderr
from coatnet_nas.cli.build_tables import cost_table, latency_table, profile_table
from coatnet_nas.errors import CoatnetError
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
    from coatnet_nas.cost import estimate_cost
    from coatnet_nas.latency import (
        LatencyTable,
        coverage_problem,
        current_meta,
        latency_breakdown,
        measure_spec,
    )

    base: dict = {"name": spec.name, "layout": spec.layout}
    if profile:
        from coatnet_nas.profile import profile_model

        result = profile_model(spec)
        base = result.to_dict()
        if not json_out:
            profile_table(result)
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
            print_stderr(
                f"note: {table_path} was measured on {table.meta.device_name} with torch "
                f"{table.meta.torch_version}; this machine has {mismatch['device_name']} and "
                f"torch {mismatch['torch_version']}: the prediction is for the table's machine"
            )
        predicted = latency_breakdown(spec, table)
        exact, guessed = predicted.kinds
        problem = coverage_problem(spec, table, predicted)
        if problem is None and guessed:
            problem = f"{guessed} of {exact + guessed} block kinds are not in the table"
        if problem is not None:
            print_stderr(
                f"note: {problem}, so blocks not in it are interpolated from its regressors; "
                "expect a larger error. For a closer prediction measure this spec: coatnet "
                "latency table --spec "
                f"{spec_arg or 'SPEC'} --image-size {spec.image_size[0]} --out NEW.json"
            )
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
        cost_table(spec, cost)
    if predicted is not None:
        latency_table(spec, predicted, stages, table_path)
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
