"""A search you can run again and side by side: new architectures each time, counted as asked.

Real SQLite files and real processes; the tiny space on synthetic data (a trial trains in about a
second, or is scored by its parameter count with the ``params`` proxy).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from coatnet_nas.cli import run
from coatnet_nas.search import SearchConfig, dedupe, run_search, space_from_dict
from coatnet_nas.search.dedupe import KEY_ATTR, earlier_result
from coatnet_nas.search.storage import make_storage
from tests.conftest import ROOT, evaluated_trials, tiny_space, write

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _arch(t: optuna.trial.FrozenTrial) -> str:
    """The architecture of a trial, from the spec every trial records (main stores it too)."""
    spec = dict(t.user_attrs["spec"])
    spec.pop("name", None)
    return json.dumps(spec, sort_keys=True)


def _space_file(tmp_path, **proxy) -> str:
    space = tiny_space(**proxy)
    space["budget"] = {"flops": "1G"}  # all 72 architectures of the tiny space are feasible
    return str(write(tmp_path, yaml.safe_dump(space), "space.yaml"))


def _search(space: str, url: str, *extra: str) -> list[str]:
    return [
        "search",
        "--space",
        space,
        "--storage",
        url,
        "--study",
        "s",
        "--device",
        "cpu",
        "--heartbeat",
        "30",
        "--json",
        *extra,
    ]


def test_same_command_twice_trains_new_architectures(tmp_path, capsys):
    space = _space_file(tmp_path, steps=2)
    url = f"sqlite:///{tmp_path}/r.db"
    args = _search(space, url, "--trials", "6", "--pruner", "none", "--out", str(tmp_path / "o"))
    assert run(args) == 0
    assert run(args) == 0
    trials = optuna.load_study(study_name="s", storage=url).get_trials()
    trained = evaluated_trials(trials)
    assert len(trained) == 12  # six new ones per run
    assert len({_arch(t) for t in trained}) == 12  # never one architecture trained twice
    runs = [k for k in optuna.load_study(study_name="s", storage=url).user_attrs if "run:" in k]
    assert len(runs) == 2  # each run recorded with the seed it drew
    capsys.readouterr()


def test_random_sampler_three_runs_do_not_replay(tmp_path):
    url = f"sqlite:///{tmp_path}/p.db"
    space = _space_file(tmp_path)
    for _ in range(3):
        assert (
            run(_search(space, url, "--trials", "4", "--proxy", "params", "--sampler", "random"))
            == 0
        )
    trials = optuna.load_study(study_name="s", storage=url).get_trials()
    scored = evaluated_trials(trials)
    assert len(scored) == 12 and len({_arch(t) for t in scored}) == 12


def test_trials_counts_trained_architectures_not_rejections(tmp_path):
    # 8 MFLOPs rejects most of the tiny space: rejections are cheap and must not eat the count.
    space = space_from_dict(tiny_space(steps=1))
    config = SearchConfig(space=space, flops=8_000_000, seed=0)
    study = run_search(
        config,
        f"sqlite:///{tmp_path}/b.db",
        "b",
        trials=4,
        sampler="random",
        pruner="none",
        heartbeat_interval=None,
        device="cpu",
    )
    trials = study.get_trials()
    assert len(evaluated_trials(trials)) == 4
    assert any(t.user_attrs.get("status") == "over_budget" for t in trials)


def test_a_repeated_architecture_is_told_the_earlier_result(tmp_path):
    url = f"sqlite:///{tmp_path}/d.db"
    config = SearchConfig(space=space_from_dict(tiny_space(steps=1)), flops=10**9, seed=0)
    kwargs = dict(sampler="random", pruner="none", heartbeat_interval=None, device="cpu")
    study = run_search(config, url, "d", trials=2, **kwargs)
    first = evaluated_trials(study.get_trials())[0]
    study.enqueue_trial(first.params)  # the same architecture proposed again
    study = run_search(config, url, "d", trials=1, **kwargs)
    trials = study.get_trials()
    repeat = [t for t in trials if t.user_attrs.get("duplicate_of") == first.number]
    # The enqueued repeat, and any the (process-seeded) sampler drew again itself.
    assert repeat and all(t.values == first.values for t in repeat)
    assert all(t.user_attrs["status"] == "duplicate" for t in repeat)
    assert len(evaluated_trials(trials)) == 3  # the repeat did not count: one more was trained
    assert len({_arch(t) for t in evaluated_trials(trials)}) == 3


@pytest.mark.parametrize("proxy", ["params"])
def test_three_searches_create_one_fresh_sqlite_file_at_once(tmp_path, proxy):
    url = f"sqlite:///{tmp_path}/fresh.db"
    args = _search(_space_file(tmp_path), url, "--trials", "4", "--proxy", proxy)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", "from coatnet_nas.cli import main; main()", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
    trials = optuna.load_study(study_name="s", storage=url).get_trials()
    scored = evaluated_trials(trials)
    assert len({_arch(t) for t in scored}) == len(scored)  # never one architecture twice
    assert len(scored) == 12  # each run evaluated its 4, and none of them was lost
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def test_enqueued_spec_is_evaluated_first_as_a_yardstick(tmp_path, capsys):
    spec = write(
        tmp_path,
        yaml.safe_dump(
            {
                "name": "known",
                "layout": "C-T",
                "depths": [1, 2, 1],
                "widths": [16, 64, 96],
                "image_size": 64,
                "num_classes": 10,
                "transformer": {"head_dim": 32},
            }
        ),
        "known.yaml",
    )
    url = f"sqlite:///{tmp_path}/y.db"
    args = _search(_space_file(tmp_path), url, "--trials", "2", "--proxy", "params")
    assert run([*args, "--enqueue", str(spec)]) == 0
    report = json.loads(capsys.readouterr().out)
    first = optuna.load_study(study_name="s", storage=url).get_trials()[0]
    assert first.user_attrs["yardstick"] == str(spec) and first.state == TrialState.COMPLETE
    assert first.user_attrs["layout"] == "C-T" and first.user_attrs["widths"] == [16, 64, 96]
    assert report["trials"][0]["yardstick"] == str(spec)


def test_a_higher_trial_waits_for_a_lower_one_still_being_sampled():
    # The race behind a repeat seen in CI: a higher trial looked before a lower one (asked
    # earlier, still sampling) stored the same key, so both trained it. Real Optuna trials.
    study = optuna.create_study()
    lower, higher = study.ask(), study.ask()
    higher.set_user_attr(KEY_ATTR, "k")
    found: dict = {}
    look = threading.Thread(
        target=lambda: found.update(t=earlier_result(study, higher.number, "k", wait=60))
    )
    look.start()
    time.sleep(0.3)
    assert look.is_alive()  # waits until the lower trial has stored its key
    lower.set_user_attr(KEY_ATTR, "k")  # the same architecture: the lower trial trains it
    time.sleep(0.8)
    assert look.is_alive()  # and now waits for its result
    lower.set_user_attr("status", "ok")
    study.tell(lower, 0.5)
    look.join(timeout=30)
    assert found["t"].number == lower.number and found["t"].values == [0.5]


def test_a_keyless_trial_from_long_ago_is_not_awaited(monkeypatch):
    monkeypatch.setattr(dedupe, "SAMPLING_SECONDS", 0.0)  # every keyless trial counts as old
    study = optuna.create_study()
    study.ask()  # RUNNING, never stores a key (its process died while sampling)
    higher = study.ask()
    higher.set_user_attr(KEY_ATTR, "k")
    started = time.monotonic()
    assert earlier_result(study, higher.number, "k", wait=60) is None
    assert time.monotonic() - started < 10


def test_opening_a_storage_again_keeps_this_process_sqlite_locks(tmp_path):
    # The cause of the lost trials three concurrent searches showed: a worker opened the storage
    # a second time, and the check that read the file's header with open()/close() dropped every
    # POSIX lock this process held on it. Another process could then write (or delete the WAL)
    # under a live reader. Rollback journal here, so a held read lock blocks a writer outright.
    path = tmp_path / "held.db"
    make_storage(f"sqlite:///{path}", None)  # an Optuna schema
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("PRAGMA journal_mode=DELETE")
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM trials").fetchall()  # holds SHARED on the file
    make_storage(f"sqlite:///{path}", None)  # opened again in this process, as a worker does
    write_elsewhere = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=0); "
        "c.execute('BEGIN EXCLUSIVE')"
    )
    other = subprocess.run(
        [sys.executable, "-c", write_elsewhere, str(path)], capture_output=True, text=True
    )
    reader.execute("COMMIT")
    reader.close()
    assert other.returncode != 0 and "database is locked" in other.stderr
