"""Searching under a latency limit predicted from a latency table: nothing over the limit is
trained, the Pareto objective, the outputs, old studies and bad input."""

from __future__ import annotations

import csv
import json
import statistics

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from coatnet_nas.cli import run
from coatnet_nas.errors import CoatnetError
from coatnet_nas.latency import build_table, sample_specs, space_kinds
from coatnet_nas.search import SearchConfig, export_study, run_search, space_from_dict
from coatnet_nas.search.report import spec_of
from coatnet_nas.units import parse_latency
from tests.conftest import tiny_space, write

optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.fixture(scope="module")
def space():
    return space_from_dict(tiny_space())


@pytest.fixture(scope="module")
def table_file(space, tmp_path_factory):
    """A tiny table for the tiny space at its target size (a few seconds)."""
    path = tmp_path_factory.mktemp("lat") / "table.json"
    build_table(
        space_kinds(space),
        sample_specs(space, 5, seed=10_000),
        out=path,
        repeats=2,
        warmup=0,
        source="test",
    )
    return path


@pytest.fixture(scope="module")
def table_json(table_file):
    return json.loads(table_file.read_text())


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("20ms", 0.02),
        ("0.02s", 0.02),
        ("1500us", 0.0015),
        (" 20 MS ", 0.02),
        ("2e1ms", 0.02),
        (0.5, 0.5),
    ],
)
def test_parse_latency(text, seconds) -> None:
    assert parse_latency(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["20", "-5ms", "0ms", "fast", "20 parsecs", "inf s", True, "9" * 80]
)
def test_parse_latency_refuses_in_one_line(text) -> None:
    with pytest.raises(CoatnetError, match="max latency") as err:
        parse_latency(text)
    assert len(str(err.value)) < 300


def test_config_needs_a_table_and_old_configs_are_unchanged(space, table_json) -> None:
    with pytest.raises(CoatnetError, match="latency_table") as err:
        SearchConfig(space=space, flops=space.budget.flops, max_latency=0.02)
    assert err.value.param == "latency_table"
    with pytest.raises(CoatnetError, match="latency_table"):
        SearchConfig(space=space, flops=space.budget.flops, objectives=("accuracy", "latency"))
    with pytest.raises(CoatnetError, match="max_latency must be a positive"):
        SearchConfig(space=space, max_latency=-1.0, latency_table=table_json)
    plain = SearchConfig(space=space, flops=space.budget.flops)
    assert "max_latency" not in plain.as_dict() and "latency_table" not in plain.as_dict()
    assert SearchConfig.from_json(plain.to_json()) == plain
    # a latency limit alone is a budget; the table travels inside the stored config
    limited = SearchConfig(space=space, max_latency=0.01, latency_table=table_json)
    again = SearchConfig.from_json(limited.to_json())
    assert again == limited and again.max_latency == 0.01
    assert limited.differences(plain) and not again.differences(limited)


def test_a_table_for_other_blocks_is_refused_up_front(space, table_json) -> None:
    only_c = json.loads(json.dumps(table_json))
    only_c["entries"] = {k: e for k, e in only_c["entries"].items() if ":T:" not in k}
    only_c["regressors"] = {g: r for g, r in only_c["regressors"].items() if ":T" not in g}
    with pytest.raises(CoatnetError, match="no measurements of") as err:
        SearchConfig(space=space, max_latency=0.01, latency_table=only_c)
    assert err.value.param == "table"


def test_a_table_for_other_models_is_refused_up_front(space, table_json) -> None:
    """Regressors extrapolate anything; a search must not rest every trial on a guess."""
    other_size = json.loads(json.dumps(table_json))
    other_size["meta"]["image_size"] = [32, 32]
    with pytest.raises(CoatnetError, match=r"measured at 32x32 but .* runs at 64x64") as err:
        SearchConfig(space=space, max_latency=0.01, latency_table=other_size)
    assert err.value.param == "table" and len(str(err.value)) < 400
    nothing_measured = json.loads(json.dumps(table_json))
    nothing_measured["entries"] = {}
    with pytest.raises(CoatnetError, match=r"none of the .* block kinds"):
        SearchConfig(space=space, max_latency=0.01, latency_table=nothing_measured)


def test_nothing_predicted_over_the_limit_is_trained(space, table_json, tmp_path) -> None:
    probe = SearchConfig(space=space, max_latency=1.0, latency_table=table_json)
    predicted = sorted(probe.latency_ms(s) for s in sample_specs(space, 30, seed=5))
    # about three draws in four are over the limit: cheap, since they are never trained
    limit_ms = statistics.quantiles(predicted, n=4)[0]
    cfg = SearchConfig(space=space, max_latency=limit_ms / 1e3, latency_table=table_json)
    for _ in range(8):  # the draws depend on a measured table: resume until one was over
        study = run_search(
            cfg,
            f"sqlite:///{tmp_path}/l.db",
            "lat",
            trials=1,
            sampler="random",
            heartbeat_interval=None,
            device="cpu",
        )
        trials = study.get_trials()
        over = [t for t in trials if t.user_attrs["latency_ms"] > limit_ms]
        under = [t for t in trials if t.user_attrs["latency_ms"] <= limit_ms]
        if over and len(under) >= 3:
            break
    assert over and len(under) >= 3
    for t in over:
        assert t.state == TrialState.PRUNED and t.user_attrs["status"] == "over_budget"
        assert "val_accuracy" not in t.user_attrs and "seconds" not in t.user_attrs
        assert t.constraints["latency"] > 0 and "predicted latency" in t.user_attrs["reason"]
    for t in under:
        assert t.constraints["latency"] <= 0
        assert t.user_attrs["latency_ms"] == pytest.approx(probe.latency_ms(spec_of(t)))
    assert sum(t.user_attrs["status"] != "over_budget" for t in trials) == len(under)

    export = export_study(study, tmp_path / "out", max_latency_ms=limit_ms)
    rows = list(csv.DictReader(export.files["trials.csv"].open()))
    assert all(float(r["latency_ms"]) > 0 for r in rows)
    assert export.files["accuracy_vs_latency.png"].stat().st_size > 1000


def test_accuracy_latency_pareto_objective(space, table_json, tmp_path) -> None:
    cfg = SearchConfig(
        space=space,
        flops=space.budget.flops,
        objectives=("accuracy", "latency"),
        latency_table=table_json,
    )
    study = run_search(
        cfg,
        f"sqlite:///{tmp_path}/p.db",
        "pareto",
        trials=2,
        sampler="random",
        heartbeat_interval=None,
        device="cpu",
    )
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    done = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert done
    for t in done:
        assert t.values[1] == pytest.approx(t.user_attrs["latency_ms"])


def test_cli_search_under_latency(space, table_file, table_json, tmp_path, capsys) -> None:
    space_path = write(tmp_path, yaml.safe_dump(tiny_space()), "space.yaml")
    probe = SearchConfig(space=space, max_latency=1.0, latency_table=table_json)
    limit = max(probe.latency_ms(s) for s in sample_specs(space, 30, seed=5)) * 2
    args = [
        "search",
        "--space",
        str(space_path),
        "--storage",
        f"sqlite:///{tmp_path}/c.db",
        "--trials",
        "2",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "runs"),
        "--max-latency",
        f"{limit:.3f}ms",
        "--table",
        str(table_file),
        "--memory-cap",
        "1G",
        "--json",
    ]
    assert run(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["study"].endswith("ms")
    assert all(r["latency_ms"] is not None for r in out["trials"])
    assert (tmp_path / "runs" / "accuracy_vs_latency.png").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--max-latency", "20"], "--max-latency: cannot parse '20'"),
        (["--max-latency", "-5ms"], "--max-latency: cannot parse"),
        (["--max-latency", "20ms"], "--table"),
        (["--objective", "accuracy,latency"], "--table"),
        (["--max-latency", "20ms", "--table", "{missing}"], "no such file"),
        (["--max-latency", "20ms", "--table", "{corrupt}"], "invalid JSON"),
        (["--memory-cap", "lots"], "--memory-cap must be a size"),
    ],
)
def test_cli_bad_latency_options_exit_2(tmp_path, capsys, args, needle) -> None:
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{nope")
    names = {"missing": tmp_path / "none.json", "corrupt": corrupt}
    argv = ["search", "--trials", "1", "--storage", f"sqlite:///{tmp_path}/x.db"]
    assert run([*argv, *(a.format(**names) for a in args)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err) < 1500
    assert not (tmp_path / "x.db").exists()
