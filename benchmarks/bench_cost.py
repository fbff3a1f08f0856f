"""Closed-form cost model: speed vs build + fvcore, and agreement over random specs.

Run: .venv/bin/python benchmarks/bench_cost.py [--specs 300] [--max-gflops 5]
Prints a markdown section for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

import torch
from machine import cpu_model

from coatnet_nas.builder import build_model
from coatnet_nas.cost import estimate_cost
from coatnet_nas.profile import profile_model
from coatnet_nas.sampling import random_spec
from coatnet_nas.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speed(name: str) -> tuple[float, float]:
    spec = load_spec(ROOT / "specs" / f"{name}.yaml")
    closed = median_seconds(lambda: estimate_cost(spec), 200)
    traced = median_seconds(lambda: profile_model(build_model(spec)), 3)
    return closed, traced


def agreement(n: int, max_gflops: float, seed: int = 1) -> tuple[int, int, float, int]:
    rng = random.Random(seed)
    checked = exact_params = 0
    worst = 0.0
    layouts = set()
    while checked < n:
        spec = random_spec(rng)
        cost = estimate_cost(spec)
        if cost.flops > max_gflops * 1e9:
            continue
        prof = profile_model(build_model(spec))
        exact_params += cost.params == prof.params
        worst = max(worst, abs(cost.flops - prof.flops) / prof.flops)
        layouts.add(spec.layout)
        checked += 1
    return checked, exact_params, worst, len(layouts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--specs", type=int, default=300)
    parser.add_argument("--max-gflops", type=float, default=5.0)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print("## Closed-form cost model (issue 3)\n")
    print(f"Machine: {cpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}.")
    print("Command: `.venv/bin/python benchmarks/bench_cost.py`\n")
    print("| spec | estimate_cost (median) | build + fvcore profile (median) | speed-up |")
    print("| --- | --- | --- | --- |")
    for name in ("coatnet0", "coatnet3"):
        closed, traced = speed(name)
        print(f"| {name} @224 | {closed * 1e6:.0f} µs | {traced:.2f} s | {traced / closed:,.0f}× |")
    checked, exact, worst, layouts = agreement(args.specs, args.max_gflops)
    print(
        f"\nAgreement over {checked} seeded random valid specs ({layouts} distinct layouts of 1–5 "
        f"C/T stages, depths 1–6, widths 16–512, image sizes 32–256, conv and patch stems, random "
        f"block options; draws above {args.max_gflops:g} GFLOPs resampled to bound tracing "
        "memory): "
        f"params exact in {exact}/{checked}; max FLOPs error vs fvcore {worst * 100:.4f}%."
    )


if __name__ == "__main__":
    main()
