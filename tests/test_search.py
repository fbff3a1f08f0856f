"""Real Optuna studies on SQLite: budget checks, exports, resume, workers, crashes, failures."""

from __future__ import annotations

import csv
import json
import os
import re
import signal

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from coatnet_nas.builder import build_model
from coatnet_nas.cli import run
from coatnet_nas.errors import CoatnetError
from coatnet_nas.profile import profile_model
from coatnet_nas.search import (
    SearchConfig,
    TrialStatus,
    export_study,
    make_storage,
    run_search,
    space_from_dict,
)
from coatnet_nas.search.opening import CONFIG_ATTR
from coatnet_nas.search.report import spec_of
from coatnet_nas.search.runner import counted
from coatnet_nas.spec import load_spec
from tests.conftest import (
    coatnet_process,
    tiny_space,
    training_after_complete,
    wait_for_trials,
    write,
)

optuna.logging.set_verbosity(optuna.logging.ERROR)


def config(**proxy) -> SearchConfig:
    space = space_from_dict(tiny_space(**proxy))
    return SearchConfig(space=space, flops=space.budget.flops, seed=0)


def test_search_respects_budget_exports_and_resumes(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    cfg = config()
    seen = []
    study = run_search(
        cfg,
        url,
        "t",
        trials=5,
        sampler="random",
        heartbeat_interval=None,
        device="cpu",
        on_progress=seen.append,
        poll_seconds=0.2,
    )
    trials = study.get_trials()
    assert [t.number for t in trials] == list(range(len(trials)))
    assert sum(map(counted, trials)) == 5  # over-budget draws do not count
    assert seen and seen[-1].done == 5
    assert {t.user_attrs["status"] for t in trials} <= {s.value for s in TrialStatus}
    for t in trials:
        assert t.user_attrs["spec"]["stages"]  # full normalized spec on every trial
        if t.state == TrialState.COMPLETE:
            # never trained when over budget; COMPLETE ones are within it by fvcore too
            assert profile_model(spec_of(t)).flops <= cfg.flops
            assert 0.0 <= t.value <= 1.0
        else:
            assert t.user_attrs["status"] in ("over_budget", "pruned", "diverged")
        if t.user_attrs.get("status") == "over_budget":
            assert t.user_attrs["flops"] > cfg.flops
            assert t.constraints["flops"] > 0
            assert "val_accuracy" not in t.user_attrs

    export = export_study(study, tmp_path / "out", budget_flops=cfg.flops)
    rows = list(csv.DictReader(export.files["trials.csv"].open()))
    assert len(rows) == len(trials)
    assert {
        "number",
        "state",
        "layout",
        "depths",
        "widths",
        "params",
        "flops",
        "val_accuracy",
        "seconds",
    } <= set(rows[0])
    for name in ("history.png", "accuracy_vs_flops.png"):
        assert export.files[name].stat().st_size > 1000
    if export.best is not None:
        best = load_spec(export.files["best.yaml"])
        assert best.image_size == (64, 64)
        assert build_model(best) is not None

    # Resume: the same call adds trials to the same study; nothing is lost.
    again = run_search(
        cfg, url, "t", trials=2, sampler="random", heartbeat_interval=None, device="cpu"
    )
    resumed = again.get_trials()
    assert [t.number for t in resumed] == list(range(len(resumed)))
    assert sum(map(counted, resumed)) == 7
    assert [t.state for t in resumed[: len(trials)]] == [t.state for t in trials]


def test_resume_with_other_settings_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    run_search(config(), url, "t", trials=1, heartbeat_interval=None, device="cpu")
    with pytest.raises(Exception, match="different configuration") as info:
        run_search(config(steps=5), url, "t", trials=1, heartbeat_interval=None, device="cpu")
    assert "space.proxy.train.steps 4 -> 5" in str(info.value)  # names what differs
    assert info.value.param == "study_name" and "--" not in str(info.value)


def test_study_stored_with_the_old_flat_proxy_recipe_resumes(tmp_path):
    # Before TrainRecipe, a stored config listed the proxy's training keys flat, next to the
    # data keys; the same settings must still resume it (compared by value, not by JSON text).
    cfg = config()
    old = cfg.as_dict()
    del old["proxy"]
    old["space"]["proxy"] = {
        "dataset": "synthetic:400",
        "data_dir": None,
        "image_size": 16,
        "width_mult": 0.5,
        "depth_mult": 1.0,
        "epochs": None,
        "steps": 4,
        "seconds": None,
        "subset": 1.0,
        "val_fraction": 0.1,
        "batch_size": 32,
        "lr": 0.002,
        "weight_decay": 0.05,
        "evals_per_epoch": 1,
        "precise_bn": 8,
    }
    stored = json.dumps(old, sort_keys=True)
    assert stored != cfg.to_json()
    url = f"sqlite:///{tmp_path}/old.db"
    study = optuna.create_study(
        study_name="old", storage=make_storage(url, None), directions=cfg.directions
    )
    study.set_user_attr(CONFIG_ATTR, stored)
    resumed = run_search(
        cfg, url, "old", trials=1, sampler="random", heartbeat_interval=None, device="cpu"
    )
    assert sum(map(counted, resumed.get_trials())) == 1  # over-budget draws are not counted
    assert resumed.user_attrs[CONFIG_ATTR] == stored  # the stored text is left as it was


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"workers": 0}, "workers"),
        ({"trials": 0}, "trials"),
        ({"sampler": "grid"}, "sampler"),
        ({"pruner": "asha"}, "pruner"),
        ({"storage_url": "nonsense"}, "storage_url"),
    ],
)
def test_run_search_errors_name_the_python_parameter(tmp_path, kwargs, param):
    kwargs = {"storage_url": f"sqlite:///{tmp_path}/e.db", **kwargs}
    with pytest.raises(CoatnetError) as info:
        run_search(config(), study_name="e", heartbeat_interval=None, device="cpu", **kwargs)
    assert info.value.param == param
    assert str(info.value).startswith(param) and "--" not in str(info.value)
    assert not (tmp_path / "e.db").exists()  # refused before any storage is opened


def test_two_local_workers_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path}/w.db"
    study = run_search(
        config(),
        url,
        "w",
        trials=6,
        workers=2,
        sampler="random",
        heartbeat_interval=5,
        device="cpu",
    )
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    # exactly the trials asked for (workers wait for each other's trials in flight), over-budget
    # draws and repeats not counted
    assert sum(map(counted, trials)) == 6
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert len({t._trial_id for t in trials}) == len(trials)


def test_diverging_and_raising_candidates_do_not_stop_the_study(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/f.db"
    study = run_search(
        config(lr=1e6, steps=6),
        url,
        "div",
        trials=3,
        sampler="random",
        heartbeat_interval=None,
        device="cpu",
    )
    skipped = ("over_budget", "duplicate")  # never trained (a repeat is told the earlier result)
    trained = [t for t in study.get_trials() if t.user_attrs.get("status") not in skipped]
    assert trained and all(t.state == TrialState.PRUNED for t in trained)
    assert all(t.user_attrs["status"] == "diverged" and t.user_attrs["reason"] for t in trained)

    import coatnet_nas.train as train

    def out_of_memory(*args, **kwargs):  # fault injection: the allocator gives up
        raise MemoryError("cannot allocate 4 GiB for activations")

    monkeypatch.setattr(train, "train_spec", out_of_memory)
    study = run_search(
        config(), url, "oom", trials=3, sampler="random", heartbeat_interval=None, device="cpu"
    )
    trained = [t for t in study.get_trials() if t.user_attrs.get("status") != "over_budget"]
    assert len(trained) == 3  # a failed training counts as an attempt; rejections do not
    assert trained and all(t.state == TrialState.FAIL for t in trained)
    assert all("MemoryError: cannot allocate" in t.user_attrs["reason"] for t in trained)


def test_kill_9_mid_trial_then_rerun_loses_nothing(tmp_path):
    space = tiny_space(steps=None, seconds=4.0, epochs=None)
    space["budget"] = {"flops": "1G"}  # everything feasible: every trial trains
    space_path = write(tmp_path, yaml.safe_dump(space), "space.yaml")
    db = tmp_path / "k.db"
    url = f"sqlite:///{db}"
    args = [
        "search",
        "--space",
        str(space_path),
        "--storage",
        url,
        "--study",
        "k",
        "--trials",
        "5",
        "--heartbeat",
        "30",
        "--device",
        "cpu",
        "--sampler",
        "random",
        "--pruner",
        "none",
        "--out",
        str(tmp_path / "out"),
        "--json",
    ]
    proc = coatnet_process(*args)
    storage = optuna.storages.RDBStorage(url)
    # killed mid-training (a trial killed while drawing its parameters is no candidate yet:
    # tests/test_search_recovery.py checks that it is failed and not re-queued)
    wait_for_trials(url, "k", training_after_complete, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = optuna.load_study(study_name="k", storage=storage).get_trials()
    complete_before = {t.number for t in before if t.state == TrialState.COMPLETE}
    assert before[-1].state == TrialState.RUNNING

    # The same command at once (the 30 s heartbeat's grace period is far from over): the killed
    # process's trial is found by its pid, failed and run again before anything else.
    args[args.index("--trials") + 1] = "1"
    rerun = coatnet_process(*args)
    out, err = rerun.communicate(timeout=180)
    assert rerun.returncode == 0, err
    assert "Warning" not in err  # e.g. Optuna's "constraint value is ignored" on the retry
    after = optuna.load_study(study_name="k", storage=storage).get_trials()
    assert not [t for t in after if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert complete_before <= {t.number for t in after if t.state == TrialState.COMPLETE}
    for t in before:
        if t.state == TrialState.COMPLETE:  # earlier results untouched
            assert after[t.number].values == t.values
    killed = after[before[-1].number]
    assert killed.state == TrialState.FAIL
    assert killed.user_attrs["status"] == "worker_died"
    retried = [t for t in after if t.user_attrs.get("retry_of") == killed.number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].params == killed.params
    assert json.loads(out)["study"] == "k"


def test_cli_search_and_report(tmp_path, capsys):
    space_path = write(tmp_path, yaml.safe_dump(tiny_space()), "space.yaml")
    url = f"sqlite:///{tmp_path}/c.db"
    out = tmp_path / "runs"
    code = run(
        [
            "search",
            "--space",
            str(space_path),
            "--storage",
            url,
            "--trials",
            "3",
            "--budget",
            "30MFLOPs",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--heartbeat",
            "2",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "leaderboard" in text and "trials by status" in text
    assert (out / "trials.csv").exists()
    assert (
        run(
            [
                "report",
                "--storage",
                url,
                "--study",
                "tiny-30.0MFLOPs",
                "--out",
                str(out / "r"),
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    rows = report["trials"]
    assert sum(r["status"] not in ("over_budget", "duplicate") for r in rows) == 3
    assert (out / "r" / "trials.csv").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--budget", "4GB"], "accepted forms"),
        (["--sampler", "grid"], "--sampler"),
        (["--pruner", "asha"], "--pruner"),
        (["--objective", "flops"], "must start with accuracy"),
        (["--timeout", "soon"], "--timeout"),
        (["--workers", "0"], "--workers must be >= 1, got 0"),
        (["--trials", "0"], "--trials must be >= 1, got 0"),
        (["--heartbeat", "0"], "--heartbeat must be >= 1 second, got 0"),
        (["--heartbeat", "-5"], "--heartbeat must be >= 1 second, got -5"),
        (["--study-trials", "0"], "--study-trials must be >= 1, got 0"),
        (["--enqueue", "specs/coatnet1.yaml"], "depths[2] 6: the space allows 1..4"),
        (["--proxy", "train:epochs=1"], "--proxy 'train:epochs=1'"),
        (["--storage", "nonsense"], "--storage"),
        (["--space", "missing.yaml"], "missing.yaml"),
        (["--storage-retry", "soon"], "--storage-retry: expected a duration"),
        (["--storage-retry", "-5m"], "--storage-retry: expected a duration"),
    ],
)
def test_search_bad_options_exit_2(capsys, args, needle):
    assert run(["search", "--trials", "1", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_the_storage_retry_window_is_a_typed_setting_with_the_env_as_fallback(
    tmp_path, monkeypatch
):
    from coatnet_nas.search import run_worker
    from coatnet_nas.search.opening import open_storage

    url = f"sqlite:///{tmp_path}/r.db"
    monkeypatch.setenv("COATNET_STORAGE_RETRY", "2m")
    assert open_storage(url).retry_seconds == 120  # the environment, when nothing is given
    assert open_storage(url, retry_seconds=7.5).retry_seconds == 7.5  # the setting wins
    for bad in (-1, float("nan"), "5m"):
        with pytest.raises(CoatnetError, match="storage_retry_seconds: expected seconds") as info:
            run_worker(url, "r", storage_retry_seconds=bad)
        assert info.value.param == "storage_retry_seconds"


def test_a_search_needs_a_budget(tmp_path, capsys):
    space = tiny_space()
    del space["budget"]
    with pytest.raises(CoatnetError, match="needs a budget") as info:
        SearchConfig(space=space_from_dict(space))
    assert info.value.param == "flops" and "--" not in str(info.value)
    path = write(tmp_path, yaml.safe_dump(space), "space.yaml")
    assert run(["search", "--space", str(path), "--trials", "1"]) == 2
    err = capsys.readouterr().err
    assert "--budget" in err and "--max-params" in err and "Traceback" not in err


def test_search_help_lists_the_strategy_choices(capsys):
    assert run(["search", "--help"]) == 0
    text = capsys.readouterr().out
    assert "tpe|random|nsga2" in text and "hyperband|median|none" in text
    # rich help panels put the short form in its own column: "--dataset  -d"
    assert re.search(r"--dataset\s+-d\b", text) and "--data-dir" in text


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--trials", "0"], "--trials must be >= 1"),
        (["--sampler", "grid"], "--sampler"),
        (["--storage-retry", "0"], "--storage-retry: expected a duration"),
    ],
)
def test_worker_bad_options_exit_2(tmp_path, capsys, args, needle):
    url = f"sqlite:///{tmp_path}/w.db"
    assert run(["worker", "--storage", url, "--study", "w", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_report_unknown_study(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/none.db"
    assert run(["report", "--storage", url, "--study", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no study named 'nope'" in err and "--study" in err


def test_missing_dataset_stops_before_any_trial(tmp_path, capsys):
    space_path = write(tmp_path, yaml.safe_dump(tiny_space()), "space.yaml")
    url = f"sqlite:///{tmp_path}/m.db"
    args = [
        "search",
        "--space",
        str(space_path),
        "--storage",
        url,
        "--trials",
        "2",
        "--dataset",
        "cifar10",
        "--device",
        "cpu",
    ]
    env_data = os.environ.pop("COATNET_DATA", None)
    try:
        assert run(args) == 2
    finally:
        if env_data is not None:
            os.environ["COATNET_DATA"] = env_data
    err = capsys.readouterr().err
    assert "cifar10" in err and "coatnet data fetch" in err and "Traceback" not in err
    assert not (tmp_path / "m.db").exists() or not optuna.get_all_study_summaries(url)
