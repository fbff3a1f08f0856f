"""Search benchmarks: over-budget rejection cost, trials/hour, TPE vs random, acceptance run.

Run: .venv/bin/python benchmarks/bench_search.py [--trials 6] [--compare-trials 10] [--skip ...]
[--throughput-trials 10 --rounds 2] (throughput: 1 worker x 1 thread, 1 worker x all cores and
``--workers 2`` alternated in one process, evaluated trials/hour; ~7 min on 2 cores).
Prints a markdown section for benchmarks/RESULTS.md. Uses the default search space and proxy
recipe on Fashion-MNIST (Debian's dataset-fashion-mnist).
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from coatnet_nas.builder import build_model
from coatnet_nas.profile import profile_model
from coatnet_nas.search import SearchConfig, TrialStatus, load_space, run_search
from coatnet_nas.search.objective import Objective
from coatnet_nas.search.report import spec_of

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from machine import cpu_model  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)


def rejection_seconds(tmp: Path, n: int = 200) -> tuple[float, float]:
    """Per-trial seconds when every candidate is over budget (never built), in-memory and SQLite."""
    config = SearchConfig(space=load_space(), flops=1_000_000, seed=0)
    out = []
    for storage in (None, f"sqlite:///{tmp}/reject.db"):
        study = optuna.create_study(
            storage=storage, direction="maximize", sampler=optuna.samplers.TPESampler(seed=0)
        )
        objective = Objective(config, device="cpu")
        start = time.perf_counter()
        study.optimize(objective, n_trials=n, catch=(Exception,))
        out.append((time.perf_counter() - start) / n)
        assert all(t.user_attrs["status"] == TrialStatus.OVER_BUDGET for t in study.trials)
    return out[0], out[1]


def timed_search(
    tmp: Path, name: str, trials: int, workers: int, sampler: str
) -> tuple[float, optuna.Study]:
    config = SearchConfig(space=load_space(), flops=4_000_000_000, seed=0)
    start = time.perf_counter()
    study = run_search(
        config,
        f"sqlite:///{tmp}/{name}.db",
        name,
        trials=trials,
        workers=workers,
        sampler=sampler,
        device="cpu",
    )
    return time.perf_counter() - start, study


def throughput(tmp: Path, trials: int, rounds: int) -> None:
    """Evaluated trials/hour of three set-ups, alternated round by round in this one process.

    Alternating spreads the machine's background load over all three instead of favouring the
    set-up that happened to run while it was quiet. Every search is a fresh study on SQLite with
    the default space and proxy recipe; the wall time includes worker start-up (spawn, imports,
    data loading), which a real search pays too.
    """
    import torch

    from coatnet_nas.search.runner import counted

    setups = [
        ("1 worker, 1 thread", 1, 1),
        ("1 worker, all cores (default)", 1, None),
        ("2 workers x 1 thread (`--workers 2`)", 2, None),
    ]
    totals = {name: [0, 0.0, 0.0] for name, _, _ in setups}
    default_threads = torch.get_num_threads()
    for r in range(rounds):
        for name, workers, threads in setups:
            torch.set_num_threads(threads or default_threads)
            config = SearchConfig(space=load_space(), flops=4_000_000_000, seed=r)
            start, started_at = time.perf_counter(), datetime.datetime.now()
            study = run_search(
                config,
                f"sqlite:///{tmp}/tp-{r}-{workers}-{threads}.db",
                "tp",
                trials=trials,
                workers=workers,
                sampler="random",
                device="cpu",
            )
            wall = time.perf_counter() - start
            totals[name][0] += sum(map(counted, study.get_trials()))
            totals[name][1] += wall
            first = min(t.datetime_start for t in study.get_trials() if t.datetime_start)
            totals[name][2] += (first - started_at).total_seconds()  # start-up to first trial
            print(f"  round {r} {name}: {wall:.0f} s", file=sys.stderr, flush=True)
    torch.set_num_threads(default_threads)
    base = totals[setups[0][0]]
    for name, (n, wall, startup) in totals.items():
        rate = n / wall * 3600
        print(
            f"- {name}: {n} evaluated trials in {wall:.0f} s = {rate:.0f}/hour "
            f"({rate / (base[0] / base[1] * 3600):.2f}x the 1-thread worker); start-up to the "
            f"first trial {startup / rounds:.1f} s per search."
        )


def best_curve(study: optuna.Study) -> list[float | None]:
    best, curve = None, []
    for t in study.get_trials():
        if t.state == TrialState.COMPLETE and all(v <= 0 for v in t.constraints.values()):
            best = t.value if best is None else max(best, t.value)
        curve.append(best)
    return curve


def acceptance(tmp: Path, trials: int) -> None:
    cmd = [
        str(ROOT / ".venv/bin/coatnet"),
        "search",
        "--budget",
        "4GFLOPs",
        "--trials",
        str(trials),
        "--storage",
        f"sqlite:///{tmp}/accept.db",
        "--out",
        str(tmp / "runs"),
        "--json",
    ]
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
    wall = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    study = optuna.load_study(study_name=out["study"], storage=f"sqlite:///{tmp}/accept.db")
    complete = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    worst = max((profile_model(build_model(spec_of(t))).flops for t in complete), default=0)
    rebuild = subprocess.run(
        [
            str(ROOT / ".venv/bin/coatnet"),
            "build",
            out["files"]["best.yaml"],
            "--profile",
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    print(
        f"- `coatnet search --budget 4GFLOPs --trials {trials}` (default space, Fashion-MNIST): "
        f"{wall / 60:.1f} min wall; states: "
        + ", ".join(
            f"{s.name} {sum(t.state == s for t in study.get_trials())}"
            for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        )
        + f"; max fvcore FLOPs of a COMPLETE trial's spec at 224: {worst / 1e9:.3f} G "
        "(budget 4 G); "
        f"`coatnet build best.yaml --profile` exit {rebuild.returncode}; best proxy accuracy "
        f"{out['best']['val_accuracy']:.4f} ({out['best']['layout']})."
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--compare-trials", type=int, default=10)
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["reject", "accept", "workers", "samplers", "throughput"],
    )
    parser.add_argument("--throughput-trials", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print("## Search (issue 5)\n")
    print(
        f"Machine: {cpu_model()}, 2 cores. Command: `.venv/bin/python benchmarks/bench_search.py`\n"
    )
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if "reject" not in args.skip:
            mem, sql = rejection_seconds(tmp)
            print(
                f"- Over-budget rejection (sample + closed-form cost + constraint, never built): "
                f"{mem * 1e3:.1f} ms/trial in memory, {sql * 1e3:.1f} ms/trial with SQLite "
                f"(TPE, 200 trials)."
            )
        if "accept" not in args.skip:
            acceptance(tmp, args.trials)
        if "workers" not in args.skip:
            for workers in (1, 2):
                wall, study = timed_search(tmp, f"w{workers}", args.trials, workers, "tpe")
                trained = sum(
                    t.user_attrs.get("status") not in (TrialStatus.OVER_BUDGET, None)
                    for t in study.get_trials()
                )
                n = len(study.get_trials())
                print(
                    f"- Default recipe, {workers} worker(s): {n} trials ({trained} trained) in "
                    f"{wall:.0f} s = {n / wall * 3600:.0f} trials/hour "
                    f"({trained / wall * 3600:.0f} trained/hour)."
                )
        if "throughput" not in args.skip:
            print(
                f"\nThroughput ({args.rounds} rounds x {args.throughput_trials} evaluated trials "
                "per set-up, alternating):\n"
            )
            throughput(tmp, args.throughput_trials, args.rounds)
        if "samplers" not in args.skip:
            print(
                f"\nBest proxy accuracy after each trial ({args.compare_trials} trials, seed 0):\n"
            )
            curves = {}
            for sampler in ("tpe", "random"):
                _, study = timed_search(tmp, f"s-{sampler}", args.compare_trials, 1, sampler)
                curves[sampler] = best_curve(study)
            print("| trial | " + " | ".join(str(i) for i in range(args.compare_trials)) + " |")
            print("| --- |" + " --- |" * args.compare_trials)
            for sampler, curve in curves.items():
                cells = [f"{v:.3f}" if v is not None else "-" for v in curve]
                print(f"| {sampler} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
