"""Acceptance run of issue 7: a proxy check with n >= 12 on Fashion-MNIST within 30 CPU minutes.

Samples ``--n`` feasible architectures from the bundled search space (4 GFLOPs at 224 px, proxies
at width x0.25 and 32 px), scores them with every training-free score and short training runs,
trains each for the reference recipe, and prints Spearman rho, Kendall tau and top-k overlap per
proxy as a markdown table (plus wall time and load), writing CSV/JSON/PNG to ``--out``.

The defaults fit 30 minutes on 2 shared CPU cores: the reference trains 6 epochs on a 10 %
subset (4,500 train / 1,500 val images), so proxies are judged against *longer training on the
same data*, not against converged accuracy. torch runs one intra-op thread by default: on an
oversubscribed machine two threads were ~25x slower than one for these small models.

    .venv/bin/python benchmarks/bench_proxy_check.py [--n 12] [--reference train:epochs=6]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time

import torch

from coatnet_nas.proxies.check import CheckEvent, run_proxy_check
from coatnet_nas.proxies.export import write_outputs
from coatnet_nas.search.space import load_space

PROXIES = (
    "train:epochs=1,train:epochs=none,steps=10,naswot,synflow,snip,grad_norm,jacob_cov,params,flops"
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--space", default=None)
    p.add_argument("--n", type=int, default=12)
    p.add_argument("--reference", default="train:epochs=6")
    p.add_argument("--proxies", default=PROXIES)
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--subset", type=float, default=0.1)
    p.add_argument("--val-fraction", type=float, default=0.25)
    p.add_argument("--evals-per-epoch", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="runs/bench-proxy-check")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    space = load_space(args.space)
    recipe = space.proxy.model_copy(
        update={
            "dataset": args.dataset,
            "subset": args.subset,
            "val_fraction": args.val_fraction,
            "evals_per_epoch": args.evals_per_epoch,
        }
    )
    space = space.model_copy(update={"proxy": recipe})
    load_start = os.getloadavg()

    def show(ev: CheckEvent) -> None:
        print(
            f"[{ev.done:>3}/{ev.total}] arch {ev.arch + 1:>2}/{ev.n} {ev.proxy:<28} "
            f"{ev.value:>12.5g}  {ev.seconds:6.1f}s",
            flush=True,
        )

    start = time.perf_counter()
    result = run_proxy_check(
        space,
        n=args.n,
        reference=args.reference,
        proxies=args.proxies,
        seed=args.seed,
        device=args.device,
        on_event=show,
    )
    wall = time.perf_counter() - start
    files = write_outputs(result, args.out)
    ref_seconds = result.seconds[result.reference]
    print(
        f"\n{len(result.specs)} architectures, reference {result.reference} "
        f"({sum(ref_seconds) / len(ref_seconds):.1f} s/arch), {args.dataset} subset {args.subset} "
        f"(val fraction {args.val_fraction}), seed {args.seed}\n"
        f"wall time {wall:.0f} s ({wall / 60:.1f} min); load average {load_start[0]:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end; {platform.machine()}, {os.cpu_count()} cores, "
        f"{args.threads} torch thread(s)\n"
    )
    print(f"| proxy | Spearman rho | Kendall tau | top-{result.k} overlap | s/arch |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for s in result.stats:
        rho = "n/a" if math.isnan(s.spearman) else f"{s.spearman:+.2f}"
        tau = "n/a" if math.isnan(s.kendall) else f"{s.kendall:+.2f}"
        print(f"| {s.proxy} | {rho} | {tau} | {s.top_k:.2f} | {s.seconds_per_arch:.2f} |")
    curve = result.curve_correlations()
    if curve:
        print("\nreference cut early (its schedule unfinished) vs its final accuracy:")
        print("| epoch | Spearman rho | Kendall tau |\n| ---: | ---: | ---: |")
        for c in curve:
            print(f"| {c['epoch']:.2f} | {c['spearman']:+.2f} | {c['kendall']:+.2f} |")
    summary = {
        "wall_seconds": round(wall, 1),
        "load_average_start": load_start,
        "stats": [s.to_dict() for s in result.stats],
        "files": {k: str(v) for k, v in files.items()},
    }
    print("\n" + json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
