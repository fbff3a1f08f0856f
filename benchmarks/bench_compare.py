"""Acceptance run of ``coatnet compare``: the paper's layout study on Fashion-MNIST, on a CPU.

Four C/T layouts and the ViT_REL baseline at one FLOPs budget, two data regimes, two seeds, with
the library exactly as ``coatnet compare`` uses it. Prints wall time, machine load, the per-regime
tables, both rankings next to the paper's, and (``--json``) one JSON object. Resumable: rerun with
the same arguments to finish an interrupted run (``--fresh`` starts over).

    .venv/bin/python benchmarks/bench_compare.py [--workers 2] [--steps 160] [--json]

``--capacity`` adds the capacity runs (trained to a plateau on a fixed set at a size where every
T stage sees 4x4 tokens) and the fit_loss / capacity_loss table; they are off by default so the
default run keeps its documented cost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from coatnet_nas.compare import (
    DEFAULT_TRAIN,
    CapacityOptions,
    CompareConfig,
    CompareRecipe,
    parse_regimes,
    run_compare,
)
from coatnet_nas.compare.report import summarize, write_outputs
from coatnet_nas.spec import load_spec
from coatnet_nas.units import human, parse_flops

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base", default=str(ROOT / "specs" / "coatnet0.yaml"))
    p.add_argument("--layouts", default="C-C-C-C,C-C-C-T,C-C-T-T,C-T-T-T,ViT")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--budget", default="10M", help="FLOPs per layout at --image-size")
    p.add_argument("--depth-mult", type=float, default=0.5)
    p.add_argument("--regimes", default="small=0.05,full=1.0")
    p.add_argument("--val-fraction", type=float, default=0.05)
    p.add_argument("--steps", type=int, default=160, help="same compute in every regime")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="CPU threads per worker")
    p.add_argument("--capacity", action="store_true", help="also measure capacity")
    p.add_argument("--capacity-images", type=int, default=512)
    p.add_argument("--capacity-batch-size", type=int, default=32)
    p.add_argument("--capacity-steps", type=int, default=300)
    p.add_argument("--capacity-eval-every", type=int, default=25)
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-compare"))
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    config = CompareConfig(
        base=load_spec(args.base),
        layouts=tuple(args.layouts.split(",")),
        flops=parse_flops(args.budget),
        depth_mult=args.depth_mult,
        dataset=args.dataset,
        image_size=(args.image_size, args.image_size),
        val_fraction=args.val_fraction,
        regimes=parse_regimes(args.regimes),
        seeds=tuple(range(args.seeds)),
        recipe=CompareRecipe(
            DEFAULT_TRAIN.evolve(epochs=None, steps=args.steps, batch_size=args.batch_size)
        ),
        capacity=CapacityOptions(
            enabled=args.capacity,
            images=args.capacity_images,
            batch_size=args.capacity_batch_size,
            steps=args.capacity_steps,
            eval_every=args.capacity_eval_every,
        ),
    )
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    done = 0

    def progress(event) -> None:
        nonlocal done
        if event.kind in ("done", "error") and not args.json:
            done += 1
            r = event.record or {}
            print(
                f"[{time.perf_counter() - t0:6.0f}s] {done:2d} {event.job.key}: "
                f"val {r.get('val_accuracy')} train loss {r.get('train_loss')} "
                f"({r.get('seconds')}s, {r.get('images_per_second')} img/s) "
                f"{event.message or ''}",
                flush=True,
            )

    result = run_compare(
        config,
        args.out,
        workers=args.workers,
        threads=args.threads,
        device="cpu",
        fresh=args.fresh,
        on_event=progress,
    )
    wall = time.perf_counter() - t0
    summary = summarize(result)
    write_outputs(summary)
    report = {
        "wall_seconds": round(wall, 1),
        "ran": result.ran,
        "resumed": result.resumed,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}",
        **summary.to_dict(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"\nwall {wall:.0f}s for {result.ran} runs ({result.resumed} resumed), workers "
        f"{args.workers} x {args.threads} thread(s); load {load_before} -> "
        f"{report['load_after']}"
    )
    print(f"budget {human(result.budget)} FLOPs @ {args.image_size}px; data {result.data}")
    for e in result.entrants:
        d = e.describe()
        print(
            f"  {e.name:8s} {human(e.params):>8s} params {human(e.flops):>7s} FLOPs "
            f"({e.flops_ratio:.1%}) depths {d['depths']} widths {d['widths']}"
        )
    for regime in config.regimes:
        print(
            f"\n| {regime.name} ({result.regime_sizes[regime.name]:,} images) | params | "
            "train loss | train acc % | val acc % | gap (pts) |"
        )
        print("| --- | --- | --- | --- | --- | --- |")
        for r in summary.regime_rows(regime.name):
            print(
                f"| {r.layout} | {human(r.params)} | {r.train_loss.fmt(3)} | "
                f"{r.train_accuracy.fmt(1, 100)} | {r.val_accuracy.fmt(1, 100)} | "
                f"{r.gap.fmt(1, 100)} |"
            )
    if summary.run.capacity:
        side = summary.run.capacity[0]["image_size"][0]
        print(f"\n| layout ({side}px capacity) | fit_loss | capacity_loss | steps | plateaued |")
        print("| --- | --- | --- | --- | --- |")
        for m in summary.measures:
            print(
                f"| {m.layout} | {m.fit_loss.fmt(3)} | {m.capacity_loss.fmt(3)} | "
                f"{m.capacity_steps.fmt(0)} | {m.capacity_plateaued}/{m.capacity_runs} |"
            )
    for name, ranking in summary.rankings.items():
        check = summary.paper[name]
        print(
            f"\n{name} ({ranking.metric}, {ranking.regime}):\n  measured: {ranking.text()}"
            f"\n  paper:    {check.paper}\n  {check.sentence()}"
        )
    for note in summary.notes:
        print(f"note: {note}")
    print(f"outputs: {', '.join(str(v) for v in summary.files.values())}")


if __name__ == "__main__":
    main()
