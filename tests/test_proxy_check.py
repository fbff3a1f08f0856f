"""Proxy recipes, the proxy-check runner and its outputs, and training-free search trials."""

from __future__ import annotations

import csv
import json
import math

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from coatnet_nas.cli import run
from coatnet_nas.cost import estimate_cost
from coatnet_nas.errors import CoatnetError
from coatnet_nas.proxies import SCORES, ProxyEvaluator, parse_proxies, parse_proxy, register_score
from coatnet_nas.proxies.check import run_proxy_check, sample_architectures
from coatnet_nas.proxies.export import write_outputs
from coatnet_nas.proxies.rank import kendall_tau, spearman
from coatnet_nas.search import SearchConfig, run_search, space_from_dict
from coatnet_nas.search.runner import counted
from tests.conftest import tiny_space

optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _no_nan(name: str) -> None:
    raise AssertionError(f"{name} in JSON output")


@pytest.fixture
def space():
    return space_from_dict(tiny_space())


# --- recipes -----------------------------------------------------------------------------------
def test_parse_proxies_groups_options_and_canonicalizes():
    proxies = parse_proxies(" train:epochs=1, subset=0.5 ,naswot:batch_size=16, params")
    assert [p.label for p in proxies] == [
        "train:epochs=1,subset=0.5",
        "naswot:batch_size=16",
        "params",
    ]
    assert proxies[0].is_training and proxies[0].get("subset") == 0.5
    assert parse_proxy("train:epochs=none,steps=5").get("epochs", "unset") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope", "unknown proxy score 'nope'"),
        ("epochs=1,naswot", "no proxy name"),
        ("train:momentum=0.9", "no option 'momentum'"),
        ("naswot:lr=0.1", "no option 'lr'"),
        ("train:dataset=cifar10", "no option 'dataset'"),
        ("naswot,naswot", "listed twice"),
        ("train:epochs", "expected key=value"),
        ("", "at least one"),
    ],
)
def test_parse_proxies_rejects_bad_text(text, message):
    with pytest.raises(CoatnetError, match=message):
        parse_proxies(text)


def test_evaluator_validates_recipes_and_scores_on_fixed_batches(space):
    ev = ProxyEvaluator(space.proxy, seed=0, device="cpu")
    with pytest.raises(CoatnetError, match="epochs"):
        ev.recipe(parse_proxy("train:epochs=-1"))
    assert ev.recipe(parse_proxy("train:steps=2")).steps == 2
    naswot = parse_proxy("naswot:batch_size=16,batches=2")
    assert ev.recipe(naswot).batch_size == space.proxy.batch_size  # the SGD batch is untouched
    first, second = ev.score_batches(naswot), ev.score_batches(naswot)
    assert [b[0].shape[0] for b in first] == [16, 16]
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, second, strict=True))
    spec = sample_architectures(space, 2, seed=0)[0]
    a, b = ev.evaluate(naswot, spec), ev.evaluate(naswot, spec)
    assert math.isfinite(a.value) and a.value == b.value and a.status == "ok"
    trained = ev.evaluate(parse_proxy("train:steps=2"), spec)
    assert 0.0 <= trained.value <= 1.0 and trained.detail["result"].steps == 2


# --- sampling and the runner -------------------------------------------------------------------
def test_sample_architectures_distinct_feasible_and_seeded(space):
    specs = sample_architectures(space, 6, seed=1, flops=space.budget.flops)
    assert len({json.dumps(s.to_dict(), sort_keys=True) for s in specs}) == 6
    assert all(estimate_cost(s).flops <= space.budget.flops for s in specs)
    again = sample_architectures(space, 6, seed=1, flops=space.budget.flops)
    assert [s.to_dict() for s in specs] == [s.to_dict() for s in again]
    with pytest.raises(CoatnetError, match="within the budget"):
        sample_architectures(space, 3, seed=0, flops=1000)
    with pytest.raises(CoatnetError, match="at least 2"):
        sample_architectures(space, 1)


def test_run_proxy_check_correlates_every_proxy_and_writes_outputs(space, tmp_path):
    events = []
    result = run_proxy_check(
        space,
        n=5,
        reference="train:steps=3",
        proxies="train:steps=1,naswot,synflow,params,flops",
        seed=0,
        device="cpu",
        on_event=events.append,
    )
    assert len(result.specs) == 5 and result.k == 2
    assert len(events) == 5 * 6 and events[-1].done == events[-1].total == 30
    ref = result.values["train:steps=3"]
    assert all(0.0 <= v <= 1.0 for v in ref)
    by_name = {s.proxy: s for s in result.stats}
    assert list(by_name) == ["train:steps=1", "naswot", "synflow", "params", "flops"]
    for name, stats in by_name.items():
        values = result.values[name]
        assert stats.n == 5 and all(math.isfinite(v) for v in values)
        expected_rho = spearman(values, ref)
        assert stats.spearman == pytest.approx(expected_rho, nan_ok=True)
        assert stats.kendall == pytest.approx(kendall_tau(values, ref), nan_ok=True)
        assert 0.0 <= stats.top_k <= 1.0
    assert len(set(result.values["params"])) > 1  # distinct architectures, distinct counts
    curves = result.curves["train:steps=3"]  # every evaluation of every training run is kept
    assert all(c[-1][1] == v for c, v in zip(curves, ref, strict=True))
    assert "naswot" not in result.curves
    assert len(result.curve_correlations()) == min(len(c) for c in curves)

    files = write_outputs(result, tmp_path / "out")
    rows = list(csv.DictReader(files["proxy_check.csv"].open()))
    assert len(rows) == 5 and "reference train:steps=3" in rows[0] and "naswot" in rows[0]
    stats_rows = list(csv.DictReader(files["proxy_stats.csv"].open()))
    assert [r["proxy"] for r in stats_rows] == list(by_name)
    assert files["proxy_check.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(files["proxy_check.json"].read_text(), parse_constant=_no_nan)
    assert data["n"] == 5 and len(data["architectures"]) == 5
    trained = data["architectures"][0]["training"]["train:steps=1"]
    assert trained["steps"] == 1 and 0.0 <= trained["train_accuracy"] <= 1.0


def test_run_proxy_check_survives_a_failing_score(space):
    @register_score("test_flaky", "fails on wide models (test only)")
    def flaky(model, images, labels):
        if sum(p.numel() for p in model.parameters()) > 20_000:
            raise RuntimeError("boom")
        return 1.0

    try:
        result = run_proxy_check(
            space, n=4, reference="params", proxies="test_flaky,flops", device="cpu"
        )
    finally:
        SCORES.pop("test_flaky")
    values = result.values["test_flaky"]
    failed = [i for i, v in enumerate(values) if math.isnan(v)]
    assert failed and all(result.statuses["test_flaky"][i] == "error: RuntimeError" for i in failed)
    assert result.stats[0].n == 4 - len(failed)
    with pytest.raises(CoatnetError, match="reference itself"):
        run_proxy_check(space, n=4, reference="params", proxies="params", device="cpu")


def test_a_stopped_proxy_check_keeps_its_scores_and_says_why(space, tmp_path):
    """SIGTERM (a Terminated) mid-check: the scores so far come back, marked interrupted."""
    from coatnet_nas.signals import Terminated

    def stop_after_three(event) -> None:
        if event.done == 3:
            raise Terminated()

    result = run_proxy_check(
        space, n=4, reference="params", proxies="flops", device="cpu", on_event=stop_after_three
    )
    assert result.interrupted == "SIGTERM"
    assert [s != "" for s in result.statuses["flops"]] == [True, True, False, False]
    assert [s != "" for s in result.statuses["params"]] == [True, False, False, False]
    assert math.isnan(result.values["params"][1]) and result.stats[0].n == 1
    write_outputs(result, tmp_path)
    saved = json.loads((tmp_path / "proxy_check.json").read_text())
    assert saved["interrupted"] == "SIGTERM" and saved["n"] == 4
    whole = run_proxy_check(space, n=4, reference="params", proxies="flops", device="cpu")
    assert whole.interrupted is None
    assert whole.values["flops"][:2] == result.values["flops"][:2]


# --- CLI ---------------------------------------------------------------------------------------
def test_cli_proxy_check_json_and_errors(tmp_path, capsys):
    space_file = tmp_path / "space.yaml"
    space_file.write_text(yaml.safe_dump(tiny_space()))
    out = tmp_path / "pc"
    code = run(
        [
            "proxy-check",
            "--space",
            str(space_file),
            "--trials",
            "4",
            "--reference",
            "train:steps=2",
            "--proxies",
            "naswot,params",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["proxy"] for s in data["stats"]] == ["naswot", "params"]
    assert (out / "proxy_check.png").exists() and (out / "proxy_check.csv").exists()

    code = run(["proxy-check", "--space", str(space_file), "--proxies", "naswot,bogus"])
    assert code == 2
    assert "unknown proxy score 'bogus'" in capsys.readouterr().err


# --- training-free search ----------------------------------------------------------------------
def test_search_config_proxy_round_trip_and_validation(space):
    plain = SearchConfig(space=space, flops=space.budget.flops)
    assert plain.proxy == "train" and "proxy" not in json.loads(plain.to_json())
    scored = SearchConfig(space=space, flops=space.budget.flops, proxy=" naswot:batch_size=32 ")
    assert scored.proxy == "naswot:batch_size=32"
    assert SearchConfig.from_json(scored.to_json()) == scored
    assert SearchConfig.from_json(plain.to_json()) == plain
    with pytest.raises(CoatnetError, match="pass plain 'train'"):
        SearchConfig(space=space, flops=space.budget.flops, proxy="train:epochs=2")
    with pytest.raises(CoatnetError, match="unknown proxy score"):
        SearchConfig(space=space, flops=space.budget.flops, proxy="magic")


def test_training_free_search_checks_budget_then_returns_the_score(space, tmp_path):
    cfg = SearchConfig(space=space, flops=space.budget.flops, proxy="naswot")
    study = run_search(
        cfg,
        f"sqlite:///{tmp_path}/s.db",
        "zc",
        trials=6,
        sampler="random",
        heartbeat_interval=None,
        device="cpu",
    )
    trials = study.get_trials()
    assert sum(map(counted, trials)) == 6  # evaluated; over-budget draws and repeats are extra
    complete = [  # a told repeat is COMPLETE too, with the earlier trial's value
        t for t in trials if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs
    ]
    assert complete
    for t in complete:
        assert t.user_attrs["proxy"] == "naswot"
        assert t.value == t.user_attrs["proxy_score"] and t.user_attrs["status"] == "ok"
        assert t.user_attrs["spec"]["stages"]
        assert t.user_attrs["flops"] <= cfg.flops
    for t in trials:
        if t.user_attrs.get("status") == "over_budget":
            assert "proxy_score" not in t.user_attrs and t.constraints["flops"] > 0


def test_cli_search_proxy_option(tmp_path, capsys):
    space_file = tmp_path / "space.yaml"
    space_file.write_text(yaml.safe_dump(tiny_space()))
    args = [
        "search",
        "--space",
        str(space_file),
        "--trials",
        "3",
        "--sampler",
        "random",
        "--storage",
        f"sqlite:///{tmp_path}/s.db",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "runs"),
    ]
    assert run([*args, "--proxy", "synflow", "--subset", "0.5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    scored = [r for r in data["trials"] if r["status"] not in ("over_budget", "duplicate")]
    assert data["study"].endswith("-synflow") and len(scored) == 3
    assert run([*args, "--proxy", "train:epochs=3"]) == 2
    assert "pass plain 'train'" in capsys.readouterr().err


def test_cli_defaults_match_the_library():
    import inspect

    from coatnet_nas.cli.proxy import proxy_check
    from coatnet_nas.proxies.check import DEFAULT_PROXIES, DEFAULT_REFERENCE

    params = inspect.signature(proxy_check).parameters
    assert params["reference"].default.default == DEFAULT_REFERENCE
    assert params["proxies"].default.default == DEFAULT_PROXIES
    assert {p.name for p in parse_proxies(DEFAULT_PROXIES)} == {"train", *SCORES}
