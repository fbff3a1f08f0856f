"""Issue 24, "why, per stage": which stage depths and widths each proxy rewards, vs the reference.

For the architectures of ``bench_supernet.py``'s check (re-drawn exactly as it draws them), each
row is one stage attribute (S1..S4 depth, width; the stem width; C or T at S3/S4) and each column
one proxy: the Spearman correlation, over the checked architectures, between that attribute and
the proxy's score. The reference's column says what stand-alone training rewards; a proxy that
ranks architectures faithfully rewards the same attributes by about as much. Reads only
``scores.jsonl`` files (no training):

    .venv/bin/python benchmarks/supernet_stages.py runs/bench-supernet runs/bench-supernet-s1 ...
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from coatnet_nas.proxies import spearman
from coatnet_nas.proxies.sample import sample_architectures
from coatnet_nas.search import load_space

REFERENCE = "train:epochs=6"
TRAINED = "train:epochs=1"


def _attributes(spec) -> dict[str, float]:
    out = {"stem width": spec.stem.width}
    for i, stage in enumerate(spec.stages, start=1):
        out[f"S{i} depth"] = stage.depth
        out[f"S{i} width"] = stage.width
    out["T stages"] = sum(stage.type == "T" for stage in spec.stages)
    return out


def _rho(xs: list[float], ys: list[float]) -> float:
    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return math.nan
    return spearman(xs, ys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("outs", nargs="+", type=Path, help="bench_supernet.py --out folders")
    parser.add_argument("--space", default=None, help="search space YAML (default: the default)")
    parser.add_argument("--n", type=int, default=12, help="architectures per seed (as --n)")
    args = parser.parse_args()
    space = load_space(args.space)
    columns: dict[str, dict[tuple[int, int], float]] = {}
    for out in args.outs:
        for line in (out / "scores.jsonl").read_text().splitlines():
            row = json.loads(line)
            proxy = row["proxy"]
            name = f"supernet ({out.name})" if proxy.startswith("supernet:") else proxy
            columns.setdefault(name, {})[(row["seed"], row["arch"])] = row["value"]
    keys = sorted(columns[REFERENCE])
    specs = {}
    for seed in sorted({s for s, _ in keys}):
        drawn = sample_architectures(space, args.n, seed=seed, flops=space.budget.flops)
        specs.update({(seed, i): spec for i, spec in enumerate(drawn)})
    attrs = {k: _attributes(specs[k]) for k in keys}
    names = [REFERENCE, TRAINED, *sorted(c for c in columns if c.startswith("supernet"))]
    print(f"Spearman rho between a stage attribute and each proxy's score, n = {len(keys)}\n")
    print("| attribute | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for attribute in attrs[keys[0]]:
        if len({attrs[k][attribute] for k in keys}) < 2:
            continue  # the same in every architecture: nothing to rank
        cells = []
        for name in names:
            ks = [k for k in keys if k in columns[name]]
            value = _rho([attrs[k][attribute] for k in ks], [columns[name][k] for k in ks])
            cells.append("n/a" if math.isnan(value) else f"{value:+.2f}")
        print(f"| {attribute} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
