"""Honest sampler comparison: a table of proxy-trained architectures, then replayed searches.

Training one candidate costs ~10 s, so comparing samplers by running real searches gives one noisy
curve per sampler. Instead:

1. ``--build-table [--limit N]`` draws a fixed sample of feasible architectures of the default
   space (random, seed 0, within its 4 GFLOPs budget) and trains each once with the default proxy
   recipe on 1 thread, appending one CSV row per architecture. It is resumable: rows already in
   the table are skipped, so it can run in the background (``nice``) and be stopped any time.
2. ``--replay`` runs ``--searches`` seeded searches per sampler against the table: an over-budget
   proposal is rejected in closed form (as in a real search, it does not count), a feasible one is
   looked up as its nearest table row (ordinal encoding of the sampled parameters), so no
   training happens. It prints the median and quartiles of best-so-far after 10/20/40 trials.

The lookup is a nearest-neighbour surrogate of the space, not the space itself; with ~150 rows it
rewards samplers that find the good region, which is the question asked.

Run: ``nice python benchmarks/bench_samplers.py --build-table --limit 150`` then ``--replay``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import optuna

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "benchmarks" / "data" / "arch_table.csv"
COLUMNS = ("index", "params_json", "layout", "flops", "params", "val_accuracy", "seconds")
CHECKPOINTS = (10, 20, 40)

optuna.logging.set_verbosity(optuna.logging.ERROR)
warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # TPE's group=True


def fixed_sample(n: int) -> list[dict[str, Any]]:
    """The first ``n`` feasible random draws of the default space (seed 0): always the same."""
    from coatnet_nas.cost import estimate_cost
    from coatnet_nas.search import load_space

    space = load_space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    out: list[dict[str, Any]] = []
    while len(out) < n:
        trial = study.ask()
        spec = space.sample(trial)
        if estimate_cost(spec).flops <= space.budget.flops:
            out.append(dict(trial.params))
        study.tell(trial, 0.0)
    return out


def read_table(path: Path = TABLE) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open() as f:
        return [
            {
                **r,
                "params_json": json.loads(r["params_json"]),
                "val_accuracy": float(r["val_accuracy"]),
            }
            for r in csv.DictReader(f)
        ]


def build_table(limit: int, path: Path = TABLE) -> None:
    """Train rows ``0..limit-1`` that are not in the table yet, appending one row each."""
    import torch

    from coatnet_nas.search import SearchConfig, load_space
    from coatnet_nas.search.objective import Objective

    torch.set_num_threads(1)
    space = load_space()
    objective = Objective(SearchConfig(space=space, flops=space.budget.flops, seed=0), "cpu")
    done = {int(r["index"]) for r in read_table(path)}
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        if new:
            writer.writeheader()
        for index, params in enumerate(fixed_sample(limit)):
            if index in done:
                continue
            trial = optuna.trial.FixedTrial(params)
            start = time.perf_counter()
            accuracy = objective(trial)
            writer.writerow(
                {
                    "index": index,
                    "params_json": json.dumps(params, sort_keys=True),
                    "layout": trial.user_attrs["layout"],
                    "flops": trial.user_attrs["flops"],
                    "params": trial.user_attrs["params"],
                    "val_accuracy": f"{accuracy:.5f}",
                    "seconds": f"{time.perf_counter() - start:.1f}",
                }
            )
            f.flush()  # a stopped build keeps every finished row
            print(f"row {index}: {accuracy:.4f}", flush=True)


def _encode(params: dict[str, Any], names: list[str]) -> list[float]:
    """Ordinal encoding: numbers as they are, a layout by its number of T stages."""
    out = []
    for name in names:
        value = params.get(name)
        if name == "layout":
            value = str(value).count("T")
        out.append(float(value) if isinstance(value, (int, float)) else 0.0)
    return out


class Table:
    """Nearest-row lookup of a sampled architecture, with per-dimension range scaling."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.names = sorted({k for r in rows for k in r["params_json"]})
        self.points = [_encode(r["params_json"], self.names) for r in rows]
        self.values = [r["val_accuracy"] for r in rows]
        cols = list(zip(*self.points, strict=True))
        self.scale = [(max(c) - min(c)) or 1.0 for c in cols]

    def lookup(self, params: dict[str, Any]) -> float:
        p = _encode(params, self.names)
        dist = [
            sum(((a - b) / s) ** 2 for a, b, s in zip(p, q, self.scale, strict=True))
            for q in self.points
        ]
        return self.values[min(range(len(dist)), key=dist.__getitem__)]


def replay(table: Table, sampler: optuna.samplers.BaseSampler, n: int) -> list[float]:
    """Best-so-far after each of ``n`` evaluated (feasible) trials of one seeded search."""
    from coatnet_nas.cost import estimate_cost
    from coatnet_nas.search import load_space

    space = load_space()
    study = optuna.create_study(direction="maximize", sampler=sampler)
    best, curve, draws = -math.inf, [], 0
    while len(curve) < n and draws < 1000 * n:
        draws += 1
        trial = study.ask()
        violation = (estimate_cost(space.sample(trial)).flops - space.budget.flops) / 1e9
        trial.set_constraint("flops", violation)  # what samplers read, as in a real search
        if violation > 0:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        value = table.lookup(trial.params)
        study.tell(trial, value)
        best = max(best, value)
        curve.append(best)
    return curve


def samplers(seed: int) -> dict[str, optuna.samplers.BaseSampler]:
    tpe = optuna.samplers.TPESampler
    return {
        "random": optuna.samplers.RandomSampler(seed=seed),
        "tpe (search default: 5 startup, multivariate)": tpe(
            seed=seed, n_startup_trials=5, multivariate=True
        ),
        "tpe (10 startup, multivariate, group)": tpe(
            seed=seed,
            n_startup_trials=10,
            multivariate=True,
            group=True,
        ),
        "tpe (10 startup, independent)": tpe(seed=seed, n_startup_trials=10),
        "nsga2 (population 8, as the search's multi-objective default)": (
            optuna.samplers.NSGAIISampler(seed=seed, population_size=8)
        ),
    }


def report(rows: list[dict[str, Any]], searches: int) -> None:
    table = Table(rows)
    print(
        f"Table: {len(rows)} architectures (benchmarks/data/arch_table.csv), proxy accuracy "
        f"min {min(table.values):.4f} / median {statistics.median(table.values):.4f} / "
        f"max {max(table.values):.4f}. {searches} seeded searches per sampler, "
        f"{max(CHECKPOINTS)} evaluated trials each.\n"
    )
    cols = " | ".join(f"best after {c} (q1 / median / q3)" for c in CHECKPOINTS)
    print(f"| sampler | {cols} |")
    print("| --- |" + " --- |" * len(CHECKPOINTS))
    names = list(samplers(0))
    curves: dict[str, list[list[float]]] = {name: [] for name in names}
    for seed in range(searches):
        for name, sampler in samplers(seed).items():
            curves[name].append(replay(table, sampler, max(CHECKPOINTS)))
    for name in names:
        cells = []
        for c in CHECKPOINTS:
            q1, med, q3 = statistics.quantiles([cv[c - 1] for cv in curves[name]], n=4)
            cells.append(f"{q1:.4f} / {med:.4f} / {q3:.4f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-table", action="store_true")
    parser.add_argument("--limit", type=int, default=150)
    parser.add_argument("--replay", action="store_true")
    parser.add_argument("--searches", type=int, default=50)
    args = parser.parse_args()
    if args.build_table:
        build_table(args.limit)
    if args.replay:
        rows = read_table()
        if len(rows) < 10:
            sys.exit(f"the table has {len(rows)} rows; build it first (--build-table)")
        report(rows, args.searches)


if __name__ == "__main__":
    main()
