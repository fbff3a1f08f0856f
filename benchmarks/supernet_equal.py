"""Issue 24, bullet 2 for ``bench_supernet.py``: top 5 of a search, the trained-proxy search at
equal time, and both top 5 lists retrained stand-alone (helpers of its ``search``, ``equal``,
``retrain`` phases; each resumable through ``<out>/equal-N-state.json``).

Time is this process's CPU time (``time.process_time``) on one pinned core, as in
``bench_ladder.py``: the trained-proxy search evaluates one candidate per ``run_search(trials=1)``
call until it has used the supernet route's seconds (supernet training + its search).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import optuna

from coatnet_nas.search import SearchConfig, run_search
from coatnet_nas.search.report import spec_of
from coatnet_nas.search.verdict import margin, mean_ci95, verdict

RETRAIN_SEED0 = 10_000  # fresh seeds: no search trained with these


class State:
    """``equal-state.json``: finished phases and re-trainings, written after each step."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        self.data.setdefault("retrains", {})

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        tmp.replace(self.path)


def arch_key(spec_dict: dict) -> str:
    return json.dumps({k: v for k, v in spec_dict.items() if k != "name"}, sort_keys=True)


def top_k(study, k: int = 5) -> list[dict]:
    """The ``k`` best feasible COMPLETE trials by value, distinct architectures, best first."""
    ok = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "COMPLETE" and t.value is not None and t.user_attrs.get("status") == "ok"
    ]
    ok.sort(key=lambda t: t.value, reverse=True)
    seen, top = set(), []
    for t in ok:
        model = spec_of(t)
        spec = model.to_dict()
        key = arch_key(spec)
        if key in seen:
            continue
        seen.add(key)
        top.append(
            {"trial": t.number, "score": float(t.value), "layout": model.layout, "spec": spec}
        )
        if len(top) == k:
            break
    return top


def equal_search(space, out: Path, limit: float, state: State, tag: str = "equal") -> dict:
    """TPE + the default pruner over the training proxy (``--rungs 1``) until ``limit`` CPU s."""
    if "equal" in state.data:
        return state.data["equal"]
    config = SearchConfig(space=space.with_rungs(1), flops=space.budget.flops, seed=0)
    common = dict(
        storage_url=f"sqlite:///{out / f'{tag}.db'}",
        study_name=tag,
        heartbeat_interval=None,
        device="cpu",
    )
    spent = float(state.data.get("equal_partial", 0.0))
    wall = float(state.data.get("equal_wall", 0.0))
    study = None
    while spent < limit:
        start, t0 = time.process_time(), time.perf_counter()
        study = run_search(config, trials=1, **common)
        spent += time.process_time() - start
        wall += time.perf_counter() - t0
        state.data["equal_partial"], state.data["equal_wall"] = spent, wall
        state.save()
        print(f"[equal] {spent:.0f} / {limit:.0f} CPU s", flush=True)
    if study is None:  # resumed after the budget was used: reopen the study
        study = optuna.load_study(study_name=tag, storage=common["storage_url"])
    trials = study.get_trials(deepcopy=False)
    record = {
        "cpu_seconds": spent,
        "wall_seconds": wall,
        "limit_seconds": limit,
        "trials": len(trials),
        "scored": sum(1 for t in trials if t.user_attrs.get("status") == "ok"),
        "top": top_k(study),
    }
    state.data["equal"] = record
    state.save()
    return record


def retrain(space, spec_dict: dict, reference: str, seeds: int, state: State) -> list[float]:
    """Stand-alone accuracy of ``spec_dict`` with the reference recipe, one per fresh seed."""
    from coatnet_nas.proxies import ProxyEvaluator, parse_proxy
    from coatnet_nas.spec import spec_from_dict

    proxy = parse_proxy(reference)
    spec = spec_from_dict(spec_dict)
    values = []
    for i in range(seeds):
        key = f"{arch_key(spec_dict)}|{reference}|{RETRAIN_SEED0 + i}"
        if key not in state.data["retrains"]:
            evaluator = ProxyEvaluator(space.proxy, seed=RETRAIN_SEED0 + i, device="cpu")
            outcome = evaluator.evaluate(proxy, spec)
            state.data["retrains"][key] = float(outcome.value)
            state.save()
            print(f"[retrain] {spec.layout} seed {i}: {outcome.value:.4f}", flush=True)
        values.append(state.data["retrains"][key])
    return values


def _cell(values: list[float]) -> str:
    ci = mean_ci95(values)
    half = "" if ci.half is None else f" ± {ci.half * 100:.1f}"
    return f"{ci.mean * 100:.1f}{half}"


def report(routes: dict[str, dict], scores: dict[str, list[list[float]]]) -> str:
    """The bullet-2 table: per route time, candidates, top 5 retrained, median, best, verdict."""
    lines = [
        "| route | wall s | CPU s | scored | top 5 retrained (mean ± 95%, %) | median | best |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    best = {}
    for name, rec in routes.items():
        means = [sum(v) / len(v) for v in scores[name]]
        i = max(range(len(means)), key=means.__getitem__)
        best[name] = scores[name][i]
        cells = "; ".join(
            f"{r['layout']} {_cell(v)}" for r, v in zip(rec["top"], scores[name], strict=True)
        )
        median = sorted(means)[len(means) // 2]
        lines.append(
            f"| {name} | {rec['wall_seconds']:.0f} | {rec['cpu_seconds']:.0f} | {rec['scored']} "
            f"| {cells} | {median * 100:.1f} | {_cell(best[name])} |"
        )
    a, b = list(best)
    lines += ["", f"Best vs best: {a} {verdict(margin(best[a], best[b]), b)}."]
    return "\n".join(lines)
