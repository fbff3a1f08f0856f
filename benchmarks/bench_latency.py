"""How well a latency table predicts whole models it never saw, against FLOPs.

Builds (or resumes) a table for the default space at one resolution and width multiplier, then
draws ``--specs`` seeded specs from the space with a seed the table's calibration models never
used, times each end to end on the table's configuration (median of ``--repeats`` after warm-up)
and compares the prediction with the measurement. The baseline is FLOPs-proportional prediction
(ms per GFLOP from the same calibration models). Prints a markdown section for RESULTS.md.

    python benchmarks/bench_latency.py --image-size 224
    python benchmarks/bench_latency.py --image-size 32 --width-mult 0.25
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from machine import cpu_model

from coatnet_nas.builder import build_model
from coatnet_nas.cost import estimate_cost
from coatnet_nas.latency import build_table, estimate_latency, sample_specs, space_kinds
from coatnet_nas.latency.fit import fit_correction
from coatnet_nas.latency.predict import group_sums_ms
from coatnet_nas.latency.timing import time_rounds
from coatnet_nas.scaling import scale_spec
from coatnet_nas.search import load_space

CALIBRATION_SEED = 10_000  # what `coatnet latency table` uses; the evaluation seed differs


def _errors(predicted: list[float], measured: list[float]) -> dict[str, float]:
    rel = [abs(p - m) / m for p, m in zip(predicted, measured, strict=True)]
    return {
        "within10": sum(r <= 0.10 for r in rel) / len(rel),
        "median": statistics.median(rel),
        "p90": sorted(rel)[int(0.9 * (len(rel) - 1))],
        "max": max(rel),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--width-mult", type=float, default=1.0)
    parser.add_argument("--specs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--calibration", type=int, default=24)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=1)
    parser.add_argument("--table", type=Path, default=None, help="table file (resumed if there)")
    parser.add_argument("--dump", type=Path, default=None, help="write the raw timings here (JSON)")
    args = parser.parse_args()

    space = load_space(None)
    size = args.image_size

    def shrink(spec):
        return scale_spec(spec, args.width_mult)

    table_path = args.table or Path(f"runs/bench-latency-{size}px-x{args.width_mult:g}.json")
    table_path.parent.mkdir(parents=True, exist_ok=True)
    kinds = space_kinds(space, size, shrink)
    calibration = sample_specs(space, args.calibration, CALIBRATION_SEED, size, shrink)
    started = time.perf_counter()
    table = build_table(
        kinds,
        calibration,
        out=table_path,
        threads=args.threads,
        warmup=args.warmup,
        repeats=args.repeats,
        per_round=args.per_round,
        image_size=(size, size),
        source=f"bench, space {space.name}",
    )
    table_seconds = time.perf_counter() - started

    specs = sample_specs(space, args.specs, args.seed, size, shrink)
    # Time the evaluation specs and the table's own calibration models in the same rounds: the
    # machine's speed drifts between the table's build and now, and the calibration models
    # (never the evaluated ones) re-fit the whole-model correction to today's speed.
    runners = []
    for spec in [*calibration, *specs]:
        model = build_model(spec, initialize=False).eval()
        x = torch.randn(table.meta.batch, spec.in_chans, *spec.image_size)
        runners.append(lambda model=model, x=x: model(x))
    started = time.perf_counter()
    samples = time_rounds(
        runners,
        torch.device("cpu"),
        threads=args.threads,
        rounds=args.repeats // args.per_round,
        per_round=args.per_round,
        warmup=args.warmup,
    )
    measure_seconds = time.perf_counter() - started
    now_ms = [statistics.median(s) * 1e3 for s in samples]
    # The noise floor: the even and the odd samples of one measurement, compared.
    halves = [(statistics.median(s[0::2]), statistics.median(s[1::2])) for s in samples]
    floor = _errors([a for a, _ in halves], [b for _, b in halves])
    calib_now, measured = now_ms[: len(calibration)], now_ms[len(calibration) :]
    refreshed = table.model_copy(deep=True)
    refreshed.correction = fit_correction(
        [group_sums_ms(s, table) for s in calibration],
        calib_now,
        [estimate_cost(s).flops for s in calibration],
    )
    drift = statistics.median(
        n / c.measured_ms for n, c in zip(calib_now, table.calibration.values(), strict=True)
    )
    results = {}
    for label, t in (("table as built", table), ("correction re-fitted now", refreshed)):
        predicted, predict_s = [], []
        for spec in specs:
            t0 = time.perf_counter()
            predicted.append(estimate_latency(spec, t) * 1e3)
            predict_s.append(time.perf_counter() - t0)
        flops = [t.correction.flops_ms_per_gflop * estimate_cost(s).flops / 1e9 for s in specs]
        results[label] = (_errors(predicted, measured), _errors(flops, measured), predict_s)
        if label != "table as built":
            for spec, m, p, f in zip(specs, measured, predicted, flops, strict=True):
                print(
                    f"{spec.layout} {list(spec.widths)} {list(spec.depths)} measured {m:.2f} "
                    f"ms predicted {p:.2f} flops-based {f:.2f}"
                )
    if args.dump is not None:
        args.dump.write_text(
            json.dumps(
                {
                    "calibration_built_ms": [c.measured_ms for c in table.calibration.values()],
                    "calibration_now_ms": calib_now,
                    "measured_ms": measured,
                    "calibration_sums": [group_sums_ms(s, table) for s in calibration],
                    "sums": [group_sums_ms(s, table) for s in specs],
                    "layouts": [s.layout for s in specs],
                    "correction": table.correction.model_dump(),
                }
            )
        )
    meta = table.meta
    print()
    print(
        f"### {size} px, width ×{args.width_mult:g}: {len(specs)} specs (seed {args.seed}), "
        f"{meta.threads} thread(s), batch {meta.batch}"
    )
    print()
    print(
        f"Machine: {cpu_model()}, {platform.system()}, torch {torch.__version__}. Table: "
        f"{len(table.entries)} block kinds + {len(table.calibration)} calibration models, "
        f"built in {table_seconds:.0f} s (0 s if resumed); correction "
        + ", ".join(f"{g} ×{v:.3f}" for g, v in sorted(table.correction.scales.items()))
        + f" + {table.correction.offset_ms:.2f} ms. Measured latencies "
        f"{min(measured):.2f}–{max(measured):.2f} ms (median of {len(samples[0])} after warm-up)."
    )
    print()
    print(
        f"Evaluation models timed in {measure_seconds:.0f} s, interleaved with the "
        f"{len(calibration)} calibration models, which ran ×{drift:.2f} their speed at the "
        "table's build (machine drift)."
    )
    print()
    print("| correction | predictor | within ±10% | median abs err | 90th pct | max |")
    print("|---|---|---|---|---|---|")
    print(
        f"| (noise floor) | even vs odd samples of one measurement | {floor['within10']:.0%} | "
        f"{floor['median']:.1%} | {floor['p90']:.1%} | {floor['max']:.1%} |"
    )
    for label, (ours, flops, _) in results.items():
        for name, e in (("latency table", ours), ("FLOPs-proportional", flops)):
            print(
                f"| {label} | {name} | {e['within10']:.0%} | {e['median']:.1%} | "
                f"{e['p90']:.1%} | {e['max']:.1%} |"
            )
    predict_s = results["table as built"][2]
    print()
    print(
        f"Prediction time per spec: median {statistics.median(predict_s) * 1e3:.3f} ms, "
        f"max {max(predict_s) * 1e3:.3f} ms."
    )


if __name__ == "__main__":
    main()
