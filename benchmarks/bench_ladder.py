"""Does the promotion ladder pick better architectures than the proxy alone, at equal compute?

Three arms, each run as ``--searches`` seeded searches on one data set and budget:

- ``ladder``: the space's promotion ladder (``--rungs``), ``--trials`` rung-0 candidates;
- ``proxy``: today's proxy-only search (TPE, ``--rungs 1``), given the ladder search's time for
  the same seed;
- ``random``: random sampling, best of N by the proxy, given the same time.

Time is this process's CPU time (``time.process_time``) on one core: the script pins itself to
``--core`` and trains with one thread, so an arm's budget does not depend on what else the
machine runs (on a dedicated core, CPU time is wall-clock time). The equal-time arms evaluate
one candidate per ``run_search`` call until they have used the ladder's time (the last one may
run over, as with a wall-clock timeout).

Each arm's chosen winner (``best.yaml``: the ladder's validated winner, the others' best proxy
score) is then re-trained by this script with ``--retrain-seeds`` fresh seeds at the top rung's
fidelity, and so is the paper's CoAtNet-0 fitted to the budget (the baseline). The report gives
each arm's median and spread of the re-trained winners and each winner against the baseline
(Welch 95% interval, in words).

Resumable: every finished search, equal-time candidate and re-training is recorded in
``<out>/state.json`` as it ends, and a running ladder search's CPU time every
``CHECKPOINT_S``; run the same command again to continue (an unfinished ladder search resumes its
study and its clock).

Two cores: run one process per core on the same ``--out`` with disjoint ``--seeds``; they share
``state.json`` under a lock, each re-trains the baseline and its own winners first, then the
remaining re-trainings one at a time (a re-training claimed by a live process is left to it, one
claimed by a dead process is taken over). A process whose searches are all done waits for the
re-trainings others hold and writes ``report.md`` (one still waiting for another's searches
leaves that to it); running the command again afterwards only re-prints the report.

Run (with ``--rungs 2`` about 2 h of one core; the default 3-rung ladder, with its 96-px rung 2,
about 3.7 h of one core, 1 h 50 min as two processes, ``--seeds 0,1`` and ``--seeds 2``):
  nohup .venv/bin/python benchmarks/bench_ladder.py --out runs/bench-ladder --trials 16 \
      --rungs 2 --core 0 > runs/bench-ladder.log 2>&1 &
Tiny check (synthetic data, seconds): ``--tiny``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import torch

from coatnet_nas.search import SearchConfig, load_space, run_search, space_from_dict
from coatnet_nas.search.liveness import alive
from coatnet_nas.search.report import best_trial, spec_of
from coatnet_nas.search.verdict import margin, mean_ci95, verdict
from coatnet_nas.search.warmstart import fitted_baseline

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from machine import cpu_model  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)

ARMS = ("ladder", "proxy", "random")
RETRAIN_SEED0 = 10_000  # fresh seeds: no search trained with these
CHECKPOINT_S = 20.0  # how often a running ladder search's CPU time is saved


def tiny_space() -> dict:
    return {
        "name": "tiny",
        "layouts": ["C-T", "C-C", "T-T"],
        "stem_depth": 1,
        "depths": [[1, 2], [1, 2]],
        "widths": [[16, 32], [32, 64], [32, 64, 96]],
        "transformer": {"head_dim": [32]},
        "target": {"image_size": 64, "num_classes": 10},
        "budget": {"flops": "1G"},
        "proxy": {
            "dataset": "synthetic:400",
            "image_size": 16,
            "width_mult": 0.5,
            "epochs": None,
            "steps": 4,
            "subset": 1.0,
            "batch_size": 32,
            "evals_per_epoch": 1,
        },
        "rungs": [
            {"top": 2, "seeds": 2, "proxy": {"steps": 8}},
            {"top": 1, "seeds": 2, "proxy": {"steps": 8, "image_size": 32}},
        ],
    }


class State:
    """``state.json``: finished searches and re-trainings, written after each one.

    Several processes (one per core, disjoint ``--seeds``) may share one file: every write
    happens under an exclusive lock on ``state.lock`` and merges this process's entries into
    what is on disk, so no process overwrites another's results.
    """

    SECTIONS = ("searches", "retrains", "claims")

    def __init__(self, path: Path):
        self.path = path
        self.lock_path = path.with_suffix(".lock")
        self.data: dict[str, Any] = {}
        self.mine: dict[str, Any] = {}  # top-level keys this process wrote (``partial:...``)
        with self._locked():
            self._reload()

    @contextlib.contextmanager
    def _locked(self):
        with open(self.lock_path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _reload(self) -> None:
        disk = json.loads(self.path.read_text()) if self.path.exists() else {}
        for name in self.SECTIONS:
            disk.setdefault(name, {})
        disk.update(self.mine)
        self.data = disk

    def _write(self) -> None:
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        tmp.replace(self.path)

    def put(self, section: str | None, key: str, value: Any) -> None:
        """Record ``value`` under ``section[key]`` (or the top-level ``key``) and save."""
        with self._locked():
            self._reload()
            if section is None:
                self.mine[key] = value
                self.data[key] = value
            else:
                self.data[section][key] = value
            self._write()

    def refresh(self) -> None:
        with self._locked():
            self._reload()

    def claim(self, key: str) -> bool:
        """Take re-training ``key`` unless it is done or a live process has claimed it."""
        with self._locked():
            self._reload()
            if key in self.data["retrains"]:
                return False
            owner = self.data["claims"].get(key)
            if owner is not None and owner != os.getpid() and alive(owner):
                return False
            self.data["claims"][key] = os.getpid()
            self._write()
            return True


class CpuClock:
    """Saves ``base`` + this process's CPU time since start under ``key`` every ``CHECKPOINT_S``,
    so a killed ladder search resumes with the CPU time it had already used."""

    def __init__(self, state: State, key: str, base: float):
        self.state, self.key, self.base = state, key, base
        self.start = time.process_time()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def spent(self) -> float:
        return self.base + time.process_time() - self.start

    def _run(self) -> None:
        while not self.stop.wait(CHECKPOINT_S):
            self.state.put(None, self.key, self.spent())

    def __enter__(self) -> CpuClock:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self.state.put(None, self.key, self.spent())


def search_arm(args, space, flops, arm: str, seed: int, state: State) -> dict[str, Any]:
    """One seeded search of ``arm``; its cost is this process's CPU time (see the module doc)."""
    key = f"{arm}:{seed}"
    done = state.data["searches"].get(key)
    if done is not None:
        return done
    name = f"{arm}-{seed}"
    ladder = arm == "ladder"
    config = SearchConfig(space=space if ladder else space.with_rungs(1), flops=flops, seed=seed)
    common = dict(
        storage_url=f"sqlite:///{args.out / f'{name}.db'}",
        study_name=name,
        sampler="random" if arm == "random" else "tpe",
        pruner="none" if arm == "random" else "hyperband",
        heartbeat_interval=None,
        device=args.device,
    )
    spent = float(state.data.get(f"partial:{key}", 0.0))
    if ladder:
        with CpuClock(state, f"partial:{key}", spent) as clock:
            study = run_search(config, trials=None, study_trials=args.trials, **common)
        spent = clock.spent()
    else:  # one candidate per call until this arm has used the ladder's CPU time
        limit = state.data["searches"][f"ladder:{seed}"]["seconds"]
        study = None
        while spent < limit:
            start = time.process_time()
            study = run_search(config, trials=1, **common)
            spent += time.process_time() - start
            state.put(None, f"partial:{key}", spent)
        if study is None:  # the time was used up before a restart: read the stored study
            study = optuna.load_study(study_name=name, storage=common["storage_url"])
    trial = best_trial(study)
    if trial is None:
        raise SystemExit(f"{name}: no feasible COMPLETE trial")
    record = {
        "seconds": spent,
        "winner": spec_of(trial).to_dict(),
        "trials": len(study.get_trials()),
        "trained": sum(1 for t in study.get_trials() if "seconds" in t.user_attrs),
    }
    state.put("searches", key, record)
    print(f"{key}: {spent:.0f} CPU s, {record['trained']} trainings", flush=True)
    return record


def retrain_keys(spec_dict: dict, seeds: int) -> list[str]:
    arch = json.dumps({k: v for k, v in spec_dict.items() if k != "name"}, sort_keys=True)
    return [f"{arch}|{RETRAIN_SEED0 + i}" for i in range(seeds)]


def retrain(args, space, spec_dict: dict, label: str, state: State) -> list[float] | None:
    """Val accuracy of ``spec_dict`` at the top rung's fidelity, one per fresh seed (cached).

    ``None`` while another live process holds one of the re-trainings.
    """
    from coatnet_nas.data import prepare_data
    from coatnet_nas.scaling import scale_spec
    from coatnet_nas.spec import spec_from_dict
    from coatnet_nas.train import Runtime, train_spec

    recipe = space.rung_recipe(len(space.rungs))
    spec = spec_from_dict(spec_dict)
    keys = retrain_keys(spec_dict, args.retrain_seeds)
    for i, key in enumerate(keys):
        if state.claim(key):
            data = prepare_data(
                recipe.dataset,
                recipe.image_size,
                subset=recipe.subset,
                val_fraction=recipe.val_fraction,
                seed=0,
                device=args.device,
            )
            result = train_spec(
                scale_spec(spec, recipe.width_mult, recipe.depth_mult),
                data,
                recipe.train_recipe(data),
                None,
                runtime=Runtime(device=args.device),
                seed=RETRAIN_SEED0 + i,
            )
            state.put("retrains", key, float(result.val_accuracy))
            print(f"retrain {label} seed {i}: {result.val_accuracy:.4f}", flush=True)
    state.refresh()
    done = state.data["retrains"]
    return [done[k] for k in keys] if all(k in done for k in keys) else None


def report(
    args,
    space,
    flops,
    state: State,
    scores_of: dict[str, list[float]],
    baseline_scores: list[float],
    label: str,
) -> str:
    """The tables, from the finished searches in ``state`` and their re-trained ``scores_of``."""
    lines = [
        f"### Promotion ladder vs proxy-only vs random (`bench_ladder.py`, {cpu_model()})",
        "",
        f"Space `{space.name}`, budget {flops / 1e9:g} GFLOPs, {args.searches} searches per arm, "
        f"ladder: {len(space.rungs) + 1} rungs, {args.trials} rung-0 candidates; proxy and "
        f"random arms given the ladder search's CPU time (one core, one thread). Winners "
        f"re-trained with {args.retrain_seeds} fresh seeds at the top rung's recipe "
        f"({space.rung_recipe(len(space.rungs)).model_dump(exclude={'train'})}).",
        "",
        "| arm | search | CPU s | trainings | winner (layout, depths, widths) | re-trained mean "
        "± 95% | vs baseline |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    per_arm: dict[str, list[float]] = {a: [] for a in ARMS}
    for arm in ARMS:
        for seed in range(args.searches):
            rec = state.data["searches"][f"{arm}:{seed}"]
            scores = scores_of[f"{arm}:{seed}"]
            ci = mean_ci95(scores)
            per_arm[arm].append(ci.mean)
            w = rec["winner"]
            stages = w["stages"]
            shape = (
                "-".join(s["type"] for s in stages)
                + " "
                + "-".join(str(x["depth"]) for x in [w["stem"], *stages])
                + " "
                + "-".join(str(x["width"]) for x in [w["stem"], *stages])
            )
            half = f" ± {ci.half:.4f}" if ci.half is not None else ""
            words = verdict(margin(scores, baseline_scores), label)
            lines.append(
                f"| {arm} | {seed} | {rec['seconds']:.0f} | {rec['trained']} | {shape} "
                f"| {ci.mean:.4f}{half} | {words} |"
            )
    base = mean_ci95(baseline_scores)
    lines += [
        "",
        f"Baseline {label}: {base.mean:.4f}"
        + (f" ± {base.half:.4f}" if base.half is not None else ""),
        "",
    ]
    lines += ["| arm | median of winners | spread (min..max) |", "| --- | --- | --- |"]
    for arm in ARMS:
        xs = per_arm[arm]
        lines.append(f"| {arm} | {statistics.median(xs):.4f} | {min(xs):.4f}..{max(xs):.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-ladder")
    parser.add_argument("--searches", type=int, default=3)
    parser.add_argument("--trials", type=int, default=16, help="rung-0 candidates (ladder arm)")
    parser.add_argument("--rungs", type=int, default=None, help="first N rungs of the ladder")
    parser.add_argument("--retrain-seeds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=4e9, help="FLOPs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tiny", action="store_true", help="synthetic data, tiny space")
    parser.add_argument("--core", type=int, default=0, help="the one CPU core to run on")
    parser.add_argument(
        "--seeds",
        type=lambda text: [int(x) for x in text.split(",")],
        default=None,
        help="comma-separated search seeds this process runs (default: all); see the module doc",
    )
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.core})  # usable_cpus() then gives every training one thread
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    space = space_from_dict(tiny_space()) if args.tiny else load_space()
    if args.rungs is not None:
        space = space.with_rungs(args.rungs)
    flops = space.budget.flops if args.tiny else int(args.budget)
    state = State(args.out / "state.json")
    start = time.perf_counter()
    seeds = args.seeds if args.seeds is not None else list(range(args.searches))
    for seed in seeds:
        for arm in ARMS:  # the ladder first: it sets this seed's time for the others
            search_arm(args, space, flops, arm, seed, state)
    if args.tiny:
        base_spec = space_from_dict(tiny_space()).sample(
            optuna.trial.FixedTrial(
                {
                    "layout": "C-T",
                    "depth_s1": 1,
                    "depth_s2": 1,
                    "width_s0": 16,
                    "width_s1": 32,
                    "width_s2": 32,
                }
            )
        )
        label = "tiny baseline"
    else:
        base_spec = fitted_baseline("coatnet0", space, flops, None)
        label = base_spec.name
    # the baseline, this process's winners, then whatever other processes left; re-trainings
    # another live process holds are waited for (a dead one's are taken over on the next pass)
    order = [(a, s) for s in seeds for a in ARMS]
    order += [(a, s) for s in range(args.searches) for a in ARMS if s not in seeds]
    everything = [f"{a}:{s}" for s in range(args.searches) for a in ARMS]
    while True:
        state.refresh()
        searching = [key for key in everything if key not in state.data["searches"]]
        scores_of: dict[str, list[float] | None] = {}
        baseline_scores = retrain(args, space, base_spec.to_dict(), label, state)
        for arm, seed in order:
            rec = state.data["searches"].get(f"{arm}:{seed}")
            if rec is not None:
                scores_of[f"{arm}:{seed}"] = retrain(
                    args, space, rec["winner"], f"{arm}-{seed}", state
                )
        if searching:  # another process's searches: it re-trains what is left and reports
            print(f"not reporting: searches still running elsewhere: {searching}", flush=True)
            return
        missing = [key for key in everything if not scores_of.get(key)]
        if not missing and baseline_scores is not None:
            break
        time.sleep(10)
    text = report(args, space, flops, state, scores_of, baseline_scores, label)
    text += f"\n\nWall time of this invocation: {time.perf_counter() - start:.0f} s.\n"
    tmp = args.out / f"report.{os.getpid()}.tmp"
    tmp.write_text(text)
    tmp.replace(args.out / "report.md")
    print(text)


if __name__ == "__main__":
    main()
