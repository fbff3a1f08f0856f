"""Issue 24: a weight-sharing supernet as a proxy: training time, seconds per candidate, ranking.

Phases (each resumable: rerun the same command after a kill and it continues where it stopped):

1. ``train``: a supernet over the default space at the proxy's size (width x0.25, 32 px) on
   Fashion-MNIST subset ``--subset`` / val fraction ``--val-fraction`` (the data of issue 7's
   proxy check), sandwich rule + in-place distillation, ``--epochs`` passes, data seed 0.
2. ``timing``: ``--timing`` candidates scored with the supernet proxy (BN recalibrated on 4
   batches of 128, then the whole held-out split), ``--timing-threads`` torch threads (1: two
   workers of one thread each use the 2 cores; two threads in one process on a loaded machine
   measured ~3x slower), after one warm-up candidate.
3. ``check``: for each seed in ``--seeds``, ``--n`` feasible architectures sampled exactly as
   ``coatnet proxy-check`` samples them, each scored by the supernet proxy, by ``--proxies``
   (default: the search's training proxy and params) and by the reference (``train:epochs=6``,
   the reference of issue 7). One JSON line per (seed, architecture, proxy) in ``scores.jsonl``.
4. ``report``: Spearman rho / Kendall tau per seed, pooled, and per layout; the equal-compute
   comparison (supernet training + N evaluations vs N trained candidates); ``report.md``.
5. ``search`` (only with ``--search-trials N``): a random-sampler search of N supernet-scored
   trials under the default budget: wall and process CPU time, trials scored, and its top 5
   (feasible, distinct architectures, by supernet score) in ``search-N.json``.
6. ``equal``: a trained-proxy search (the default training proxy on the same data, TPE + the
   default pruner as ``coatnet search`` uses, ``--rungs 1``) given the supernet route's total
   time (supernet training seconds from ``train.json`` + the search's CPU seconds), counted as
   this process's CPU time, one ``run_search(trials=1)`` call per candidate as in
   ``bench_ladder.py``; resumable through ``equal-N-state.json``.
7. ``retrain``: both top-5 lists trained stand-alone with ``--reference``, ``--retrain-seeds``
   fresh seeds each (cached per architecture and seed), and the table of ``equal-N.md``: time,
   candidates scored, top 5 with mean +- 95% interval, median, best, Welch verdict best vs best.

Issue 24's first bullet (phases 1-4)::

    nohup nice -n 15 .venv/bin/python benchmarks/bench_supernet.py --out runs/bench-supernet &

Its second bullet (phases 5-7; ``--core`` pins the process to one core so CPU time is the unit;
the search must finish in <= 30 min: ``wall_seconds`` in ``search-2000.json``)::

    nohup .venv/bin/python benchmarks/bench_supernet.py --out runs/bench-supernet --core 1 \\
        --search-trials 2000 --phases train,search,equal,retrain > runs/supernet-equal.log 2>&1 &

``--tiny`` runs any phase on a seconds-scale synthetic space (a smoke test, e.g. with
``--epochs 1 --subset 1 --search-trials 6 --reference train:steps=4``).

Timings depend on the machine's load: the report prints the load average next to them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from coatnet_nas.proxies import ProxyEvaluator, kendall_tau, parse_proxies, parse_proxy, spearman
from coatnet_nas.proxies.sample import sample_architectures
from coatnet_nas.search import SearchConfig, load_space, run_search, space_from_dict
from coatnet_nas.supernet.score import SupernetScorer
from coatnet_nas.supernet.train import SandwichRule, setup_supernet, train_supernet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ladder import tiny_space as ladder_tiny_space
from supernet_equal import RETRAIN_SEED0, State, equal_search, retrain, top_k
from supernet_equal import report as equal_report


def tiny_space() -> dict:
    """bench_ladder's seconds-scale space (``--tiny``) without its ladder: synthetic data, 16 px."""
    space = ladder_tiny_space()
    del space["rungs"]
    return space


def _space(args):
    space = space_from_dict(tiny_space()) if args.tiny else load_space(args.space)
    recipe = space.proxy.model_copy(
        update={"subset": args.subset, "val_fraction": args.val_fraction, "evals_per_epoch": 1}
    )
    return space.model_copy(update={"proxy": recipe})


def phase_train(args, out: Path) -> dict:
    path = out / "super.pt"
    done = out / "train.json"
    if done.exists():
        return json.loads(done.read_text())
    setup = setup_supernet(_space(args), seed=0, device="cpu", epochs=args.epochs)
    rule = SandwichRule(children=args.children, distill=not args.no_distill)
    load = os.getloadavg()[0]

    def show(info) -> None:
        if info.step % 25 == 0 or info.step == info.total:
            print(
                f"[train] step {info.step}/{info.total} loss {info.loss:.3f} "
                f"acc {info.accuracy:.3f} {info.seconds:.0f}s",
                flush=True,
            )

    run = train_supernet(
        setup.space,
        setup.data,
        setup.settings,
        setup.recipe,
        path,
        rule=rule,
        seed=args.supernet_seed,
        resume=path.exists(),
        save_every=30.0,
        source=setup.source,
        progress=show,
    )
    stored = torch.load(path, weights_only=True)["train"]
    info = {
        "steps": run.steps,
        "seconds": stored["elapsed"],
        "epochs": args.epochs,
        "supernet_seed": args.supernet_seed,
        "rule": rule.model_dump(),
        "load_start": load,
        "load_end": os.getloadavg()[0],
        "space": setup.space.describe(),
        "resumed_from": run.resumed_from,
    }
    done.write_text(json.dumps(info, indent=2))
    return info


def phase_timing(args, out: Path) -> dict:
    done = out / "timing.json"
    if done.exists():
        return json.loads(done.read_text())
    torch.set_num_threads(args.timing_threads)
    space = _space(args)
    specs = sample_architectures(space, args.timing, seed=100, flops=space.budget.flops)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    scorer = SupernetScorer(out / "super.pt", device="cpu")
    loaded = time.perf_counter() - start
    scorer.score(specs[0])  # warm-up (first-call allocations), not counted
    seconds = []
    for spec in specs:
        t = time.perf_counter()
        scorer.score(spec)
        seconds.append(time.perf_counter() - t)
    torch.set_num_threads(args.threads)
    info = {
        "candidates": len(seconds),
        "threads": args.timing_threads,
        "load_seconds": loaded,
        "median_s": statistics.median(seconds),
        "mean_s": statistics.fmean(seconds),
        "max_s": max(seconds),
        "load_start": load,
        "load_end": os.getloadavg()[0],
    }
    done.write_text(json.dumps(info, indent=2))
    return info


def _done(path: Path) -> set[tuple]:
    if not path.exists():
        return set()
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return {(r["seed"], r["arch"], r["proxy"]) for r in rows}


def phase_check(args, out: Path) -> None:
    space = _space(args)
    supernet = f"supernet:{out / 'super.pt'}"
    proxies = [parse_proxy(supernet), *parse_proxies(args.proxies), parse_proxy(args.reference)]
    scores = out / "scores.jsonl"
    for seed in args.seeds:
        specs = sample_architectures(space, args.n, seed=seed, flops=space.budget.flops)
        evaluator = ProxyEvaluator(space.proxy, seed=seed, device="cpu")
        done = _done(scores)
        for i, spec in enumerate(specs):
            for proxy in proxies:
                if (seed, i, proxy.label) in done:
                    continue
                outcome = evaluator.evaluate(proxy, spec)
                row = {
                    "seed": seed,
                    "arch": i,
                    "layout": spec.layout,
                    "proxy": proxy.label,
                    "value": outcome.value,
                    "seconds": outcome.seconds,
                    "load": os.getloadavg()[0],
                }
                with scores.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(
                    f"[check] seed {seed} arch {i + 1}/{len(specs)} {spec.layout} "
                    f"{proxy.label[:40]:<40} {outcome.value:.4g} {outcome.seconds:.1f}s",
                    flush=True,
                )


def _corr(rows: list[dict], proxy: str, reference: str) -> tuple[float, float, int]:
    ref = {(r["seed"], r["arch"]): r["value"] for r in rows if r["proxy"] == reference}
    mine = {(r["seed"], r["arch"]): r["value"] for r in rows if r["proxy"] == proxy}
    keys = sorted(set(ref) & set(mine))
    if len(keys) < 3:
        return math.nan, math.nan, len(keys)
    a, b = [mine[k] for k in keys], [ref[k] for k in keys]
    return spearman(a, b), kendall_tau(a, b), len(keys)


def phase_report(args, out: Path, train: dict, timing: dict | None) -> str:
    rows = [json.loads(x) for x in (out / "scores.jsonl").read_text().splitlines() if x.strip()]
    reference = parse_proxy(args.reference).label
    labels = list(dict.fromkeys(r["proxy"] for r in rows if r["proxy"] != reference))
    lines = [
        f"Supernet: {train['steps']} steps ({train['epochs']} epochs), {train['seconds']:.0f} s "
        f"training (load {train['load_start']:.1f} -> {train['load_end']:.1f}); {train['space']}.",
    ]
    if timing:
        lines.append(
            f"Scoring: median {timing['median_s']:.2f} s / candidate (mean {timing['mean_s']:.2f}, "
            f"max {timing['max_s']:.2f}) over {timing['candidates']} candidates, "
            f"{timing['threads']} threads, load {timing['load_start']:.1f}; loading the supernet "
            f"and data {timing['load_seconds']:.1f} s once."
        )
    seeds = sorted({r["seed"] for r in rows})
    head = " | ".join(f"seed {s} rho / tau (n)" for s in seeds)
    lines += [
        "",
        f"| proxy | s/arch | {head} | pooled rho / tau (n) |",
        "|---|---:|" + "---|" * (len(seeds) + 1),
    ]
    for label in labels:
        cells = []
        for s in seeds:
            rho, tau, n = _corr([r for r in rows if r["seed"] == s], label, reference)
            cells.append(f"{rho:+.2f} / {tau:+.2f} ({n})")
        rho, tau, n = _corr(rows, label, reference)
        secs = [r["seconds"] for r in rows if r["proxy"] == label]
        lines.append(
            f"| {label.replace(str(out) + '/', '')} | {statistics.fmean(secs):.2f} | "
            f"{' | '.join(cells)} | {rho:+.2f} / {tau:+.2f} ({n}) |"
        )
    ref_secs = [r["seconds"] for r in rows if r["proxy"] == reference]
    if ref_secs:
        lines.append(f"| reference {reference} | {statistics.fmean(ref_secs):.2f} | |")
    layouts = sorted({r["layout"] for r in rows})
    supernet = next(lab for lab in labels if lab.startswith("supernet"))
    lines += ["", "Within one layout (supernet proxy vs reference, both seeds pooled):", ""]
    for layout in layouts:
        sub = [r for r in rows if r["layout"] == layout]
        rho, _, n = _corr(sub, supernet, reference)
        lines.append(f"- {layout}: rho {rho:+.2f} over {n} architectures")
    trained = [lab for lab in labels if lab.startswith("train")]
    if trained and timing:
        e_t = statistics.fmean(r["seconds"] for r in rows if r["proxy"] == trained[0])
        e_s = timing["median_s"]
        if e_t > e_s:
            n_star = train["seconds"] / (e_t - e_s)
            lines += [
                "",
                f"Equal compute: supernet training ({train['seconds']:.0f} s) + N x "
                f"{e_s:.2f} s equals N x {e_t:.1f} s of {trained[0]} at N = {n_star:.0f} "
                "candidates; beyond that the supernet scores more candidates per second "
                "spent.",
            ]
    text = "\n".join(lines)
    (out / "report.md").write_text(text + "\n")
    return text


def phase_search(args, out: Path) -> dict:
    tag = f"search-{args.search_trials}"  # its own study: an older search.db is not topped up
    done = out / f"{tag}.json"
    if done.exists():
        return json.loads(done.read_text())
    space = _space(args)
    cfg = SearchConfig(space=space, flops=space.budget.flops, proxy=f"supernet:{out / 'super.pt'}")
    load = os.getloadavg()[0]
    resumed = (out / f"{tag}.started").exists()  # then the times cover only this run's trials
    (out / f"{tag}.started").touch()
    start, cpu = time.perf_counter(), time.process_time()
    study = run_search(  # study_trials: a rerun after a kill tops the study up to N
        cfg,
        f"sqlite:///{out}/{tag}.db",
        tag,
        trials=None,
        study_trials=args.search_trials,
        sampler="random",
        heartbeat_interval=None,
        device="cpu",
    )
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    ok = [t for t in study.get_trials() if t.user_attrs.get("status") == "ok"]
    info = {
        "trials": len(study.get_trials()),
        "scored": len(ok),
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "resumed": resumed,
        "load_start": load,
        "load_end": os.getloadavg()[0],
        "top": top_k(study),
    }
    done.write_text(json.dumps(info, indent=2))
    print(f"[search] {len(ok)} scored in {wall:.0f} s wall, {cpu:.0f} s CPU (load {load:.1f})")
    return info


def phase_equal(args, out: Path, train: dict, search: dict, state: State) -> dict:
    """The trained-proxy search given the supernet route's total time (CPU s, one core)."""
    limit = train["seconds"] + search["cpu_seconds"]
    record = equal_search(_space(args), out, limit, state, tag=f"equal-{args.search_trials}")
    print(f"[equal] {record['scored']} scored in {record['cpu_seconds']:.0f} CPU s", flush=True)
    return record


def phase_retrain(args, out: Path, search: dict, equal: dict, state: State) -> str:
    space = _space(args)
    train = json.loads((out / "train.json").read_text())
    supernet = {**search, "cpu_seconds": train["seconds"] + search["cpu_seconds"]}
    supernet["wall_seconds"] = train["seconds"] + search["wall_seconds"]
    routes = {"supernet (train + search)": supernet, "trained proxy (TPE)": equal}
    scores = {
        name: [
            retrain(space, r["spec"], args.reference, args.retrain_seeds, state) for r in rec["top"]
        ]
        for name, rec in routes.items()
    }
    text = (
        f"Top 5 of each route retrained with {args.reference}, {args.retrain_seeds} seeds each "
        f"(seeds {RETRAIN_SEED0}+); supernet route time = supernet training "
        f"({train['seconds']:.0f} s elapsed, from train.json: one thread, so ~CPU s on a quiet "
        f"pinned core) + its search of {search['scored']} candidates.\n\n"
        + equal_report(routes, scores)
    )
    (out / f"equal-{args.search_trials}.md").write_text(text + "\n")
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--space", default=None)
    p.add_argument("--out", default="runs/bench-supernet")
    p.add_argument("--epochs", type=float, default=15)
    p.add_argument("--children", type=int, default=2)
    p.add_argument("--no-distill", action="store_true")
    p.add_argument("--subset", type=float, default=0.1)
    p.add_argument("--val-fraction", type=float, default=0.25)
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1])
    p.add_argument("--n", type=int, default=12)
    p.add_argument("--proxies", default="train:epochs=1,params")
    p.add_argument("--reference", default="train:epochs=6")
    p.add_argument("--timing", type=int, default=20)
    p.add_argument("--timing-threads", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--search-trials", type=int, default=0)
    p.add_argument("--retrain-seeds", type=int, default=2)
    p.add_argument(
        "--supernet-seed",
        type=int,
        default=0,
        help="the supernet's own seed (init, sandwich draws, batch order); the data split stays 0",
    )
    p.add_argument("--core", type=int, default=None, help="pin this process to one CPU core")
    p.add_argument("--tiny", action="store_true", help="seconds-scale smoke space")
    p.add_argument("--phases", default="train,timing,check,report,search,equal,retrain")
    args = p.parse_args()
    if args.core is not None:  # CPU time on one core: the equal-time comparison's unit
        os.sched_setaffinity(0, {args.core})
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    phases = args.phases.split(",")
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True
    )
    train = phase_train(args, out)
    cached = (out / "timing.json").exists()  # a report-only rerun shows the stored timing
    timing = phase_timing(args, out) if "timing" in phases or cached else None
    if "check" in phases:
        phase_check(args, out)
    if "report" in phases and (out / "scores.jsonl").exists():
        print(phase_report(args, out, train, timing), flush=True)
    if args.search_trials > 0 and {"search", "equal", "retrain"} & set(phases):
        search = phase_search(args, out)
        state = State(out / f"equal-{args.search_trials}-state.json")
        if "equal" in phases or "retrain" in phases:
            equal = phase_equal(args, out, train, search, state)
            if "retrain" in phases:
                print(phase_retrain(args, out, search, equal, state), flush=True)


if __name__ == "__main__":
    main()
