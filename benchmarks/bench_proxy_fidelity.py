"""How well do cheap proxies rank architectures where attention is real (issue 21, point 3)?

The default proxy trains at 32 px, where a C-T-T-T network's stages run on 8x8, 4x4, 2x2 and 1x1
maps; a 224-px target's T stages see 14x14 and 7x7 tokens. This script measures proxies against
a reference at 96 px (Fashion-MNIST upscaled: S3 runs on 6x6 tokens, S4 on 3x3), over
architectures sampled from the default space *stratified by layout* (``--per-layout`` of each of
C-C-C-C, C-C-C-T, C-C-T-T, C-T-T-T, all within the budget), the reference trained with seed 0 on
every architecture and with seed 1 on the first half of each layout's (its seed-to-seed ρ is the
ceiling any proxy can reach).

Candidates (each a proxy-check proxy string; cheapest first): the default rung-0 proxy with two
seeds (and their mean), the ladder's rung-1 recipe, a 64-px proxy (S3 sees 4x4 tokens) on fewer
images, more epochs on fewer images (EcoNAS), and ``params``. Reported per candidate: seconds per
architecture, Spearman ρ and Kendall τ against the reference mean, and ρ within each layout.

One core, one thread (``--core``); resumable: each (architecture, proxy) value is written to
``<out>/state.json`` as it is measured; run the same command again to continue.

    nohup .venv/bin/python benchmarks/bench_proxy_fidelity.py --core 1 \\
        > runs/bench-proxy-fidelity.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from coatnet_nas.proxies.evaluate import ProxyEvaluator
from coatnet_nas.proxies.parse import parse_proxy
from coatnet_nas.proxies.rank import kendall_tau, spearman
from coatnet_nas.proxies.sample import sample_architectures
from coatnet_nas.search import space_from_dict
from coatnet_nas.spec import spec_from_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from machine import cpu_model  # noqa: E402

LAYOUTS = ("C-C-C-C", "C-C-C-T", "C-C-T-T", "C-T-T-T")
REFERENCE = "train:image_size=96,subset=0.25,epochs=1"
CANDIDATES = (
    ("rung 0 (default proxy), seed 0", "train"),
    ("rung 0, seed 1", "train:seed=1"),
    ("EcoNAS: 1/4 of the images, 4 epochs", "train:subset=0.05,epochs=4"),
    ("64 px on half the images (S3 sees 4x4 tokens)", "train:image_size=64,subset=0.1"),
    ("rung 1 (half the data, 2 epochs)", "train:subset=0.5,epochs=2"),
    ("params", "params"),
)


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault("archs", [])
    data.setdefault("values", {})
    return data


def save(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


def sample(per_layout: int, flops: float) -> list[dict]:
    """``per_layout`` architectures of each layout, interleaved (layout by layout)."""
    base = yaml.safe_load((ROOT / "coatnet_nas/specs/search/default.yaml").read_text())
    by_layout = []
    for layout in LAYOUTS:
        space = space_from_dict({**base, "layouts": [layout]})
        specs = sample_architectures(space, per_layout, seed=0, flops=int(flops))
        by_layout.append([s.to_dict() for s in specs])
    return [by_layout[j][i] for i in range(per_layout) for j in range(len(LAYOUTS))]


def measure(args: argparse.Namespace, state: dict[str, Any], path: Path) -> None:
    base = yaml.safe_load((ROOT / "coatnet_nas/specs/search/default.yaml").read_text())
    space = space_from_dict(base)
    evaluator = ProxyEvaluator(space.proxy, seed=0, device="cpu")
    half = args.per_layout // 2
    for i, arch in enumerate(state["archs"]):
        spec = spec_from_dict(arch)
        todo = [p for _, p in CANDIDATES] + [REFERENCE]
        if i < half * len(LAYOUTS):
            todo.append(REFERENCE + ",seed=1")
        for proxy in todo:
            key = f"{i}|{proxy}"
            if key in state["values"]:
                continue
            outcome = evaluator.evaluate(parse_proxy(proxy), spec)
            state["values"][key] = {"value": outcome.value, "seconds": outcome.seconds}
            save(path, state)
            line = f"{i:2d} {spec.layout:8s} {proxy:45s} {outcome.value:.4f}"
            print(f"{line} {outcome.seconds:6.1f}s", flush=True)


def value(state: dict[str, Any], i: int, proxy: str) -> float:
    got = state["values"].get(f"{i}|{proxy}")
    return math.nan if got is None else float(got["value"])


def rho(xs: list[float], ys: list[float], stat=spearman) -> float:
    """``stat`` over the architectures where both values were measured (NaN: not yet)."""
    pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if not (math.isnan(x) or math.isnan(y))]
    return stat([p[0] for p in pairs], [p[1] for p in pairs]) if len(pairs) > 2 else math.nan


def nanmean(xs: list[float]) -> float:
    got = [x for x in xs if not math.isnan(x)]
    return statistics.fmean(got) if got else math.nan


def mean_seconds(state: dict[str, Any], n: int, proxy: str) -> float:
    got = state["values"]
    return nanmean([got[f"{i}|{proxy}"]["seconds"] for i in range(n) if f"{i}|{proxy}" in got])


def report(args: argparse.Namespace, state: dict[str, Any], wall: float) -> str:
    archs = state["archs"]
    n = len(archs)
    layouts = [spec_from_dict(a).layout for a in archs]
    ref0 = [value(state, i, REFERENCE) for i in range(n)]
    ref1 = [value(state, i, REFERENCE + ",seed=1") for i in range(n)]
    ref = [nanmean([a, b]) for a, b in zip(ref0, ref1, strict=True)]
    both = [i for i in range(n) if not math.isnan(ref1[i])]
    ceiling = rho([ref0[i] for i in both], [ref1[i] for i in both])
    seeds = [[value(state, i, "train"), value(state, i, "train:seed=1")] for i in range(n)]
    mean01 = [nanmean(pair) for pair in seeds]
    rows = [(label, p, [value(state, i, p) for i in range(n)]) for label, p in CANDIDATES]
    rows.insert(2, ("rung 0, mean of seeds 0 and 1", "train + train:seed=1", mean01))
    counts = ", ".join(f"{lay} {layouts.count(lay)}" for lay in LAYOUTS)
    lines = [
        f"### Proxy fidelity at 96 px (`bench_proxy_fidelity.py`, {cpu_model()}, one thread)",
        "",
        f"{n} architectures of the default space ({counts}), 4 GFLOPs at 224 px, proxies at "
        f"width ×0.25. Reference `{REFERENCE}` (S3 on 6×6 tokens, S4 on 3×3): seed 0 on all, "
        f"seed 1 on {len(both)}; the reference's own seed-0-vs-seed-1 ρ over those {len(both)} "
        f"is **{ceiling:+.2f}** (the ceiling for any proxy). Reference accuracy "
        f"{min(ref):.3f}..{max(ref):.3f}, median {statistics.median(ref):.3f}; one reference "
        f"training {mean_seconds(state, n, REFERENCE):.0f} s.",
        "",
        "| proxy | recipe | s/arch | ρ | τ | ρ within C-C-C-C / C-C-C-T / C-C-T-T / C-T-T-T |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for label, p, xs in rows:
        secs = sum(mean_seconds(state, n, q) for q in p.split(" + "))
        within = []
        for lay in LAYOUTS:
            idx = [i for i in range(n) if layouts[i] == lay]
            within.append(f"{rho([xs[i] for i in idx], [ref[i] for i in idx]):+.2f}")
        lines.append(
            f"| {label} | `{p}` | {secs:.1f} | {rho(xs, ref):+.2f} | "
            f"{rho(xs, ref, kendall_tau):+.2f} | {' / '.join(within)} |"
        )
    lines += ["", f"Wall time of this invocation: {wall:.0f} s."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-proxy-fidelity")
    parser.add_argument("--per-layout", type=int, default=4)
    parser.add_argument("--budget", type=float, default=4e9, help="FLOPs")
    parser.add_argument("--core", type=int, default=1, help="the one CPU core to run on")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.core})
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "state.json"
    state = load(path)
    if not state["archs"]:
        state["archs"] = sample(args.per_layout, args.budget)
        save(path, state)
    start = time.perf_counter()
    measure(args, state, path)
    text = report(args, state, time.perf_counter() - start)
    (args.out / "report.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
