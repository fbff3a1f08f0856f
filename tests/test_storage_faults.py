"""The study's database as a cluster has it: restarted mid-trial, away for good, reached by
either PostgreSQL URL form, or someone else's. Real PostgreSQL server, real processes.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import sqlite3
import subprocess
import time
import warnings
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import yaml
from optuna.trial import TrialState

from coatnet_nas.search import SearchConfig, run_search, space_from_dict
from coatnet_nas.search.storage import make_storage
from tests.conftest import (
    _bindir,
    coatnet_process,
    evaluated_trials,
    postgres_server,
    tiny_space,
    write,
)

optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.fixture(scope="module")
def postgres_url():
    try:
        with postgres_server() as url:
            yield url
    except FileNotFoundError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


def _stop_server(url: str) -> list[str]:
    """Stop the test server; the ``pg_ctl start`` arguments that bring it back as it was."""
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as con:
        datadir = con.execute(sqlalchemy.text("SHOW data_directory")).scalar()
    engine.dispose()
    opts = shlex.split(Path(datadir, "postmaster.opts").read_text())[1:]  # its command line
    at = opts.index("-D")
    options = " ".join(shlex.quote(o) for o in opts[:at] + opts[at + 2 :])
    _pg_ctl(datadir, "stop", "-m", "fast")
    return [datadir, "start", "-l", f"{datadir}/server.log", "-o", options]


def _pg_ctl(datadir: str, *args: str) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(
        [*prefix, f"{_bindir()}/pg_ctl", "-D", datadir, "-w", *args],
        check=True,
        capture_output=True,
        timeout=120,
        cwd=datadir,
    )


def _space(tmp_path, steps: int) -> str:
    # A step budget (not seconds): on a loaded machine the evaluations still come mid-training.
    space = tiny_space(steps=steps, seconds=None, epochs=None, evals_per_epoch=4)
    space["budget"] = {"flops": "1G"}  # every trial trains
    return str(write(tmp_path, yaml.safe_dump(space), "space.yaml"))


def _wait_running(url: str, study: str, proc, seconds: float = 120, trained: bool = True):
    """A trial in flight; ``trained``: one that reported an evaluation (training under way)."""
    deadline = time.monotonic() + seconds
    trials: list = []
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.3)
        try:
            trials = optuna.load_study(study_name=study, storage=url).get_trials()
        except KeyError:
            continue
        running = [
            t
            for t in trials
            if t.state == TrialState.RUNNING
            and "pid" in t.user_attrs
            and (t.intermediate_values or not trained)
        ]
        if running:
            return running[0]
    proc.kill()
    seen = [(t.number, t.state.name, len(t.intermediate_values)) for t in trials]
    pytest.fail(f"never saw a trial running ({proc.returncode}, {seen}): {proc.communicate()}")


@pytest.mark.parametrize("driver", ["postgresql", "postgresql+psycopg2"])
def test_both_postgresql_url_forms_work(postgres_url, driver):
    url = postgres_url.replace("postgresql+psycopg2", driver)
    storage = make_storage(url, None)
    assert storage.engine.dialect.driver == ("psycopg" if driver == "postgresql" else "psycopg2")
    raw = storage.engine.raw_connection()  # the driver connection carries the bounded connect
    try:
        conn = raw.driver_connection
        info = conn.info.get_parameters() if driver == "postgresql" else conn.get_dsn_parameters()
        assert info["connect_timeout"] == "10" and info["keepalives_idle"] == "30", info
    finally:
        raw.close()
    space = space_from_dict(tiny_space())
    config = SearchConfig(space=space, flops=space.budget.flops, seed=0, proxy="params")
    study = run_search(config, url, f"url-{driver}", trials=2, device="cpu")
    assert len(evaluated_trials(study.get_trials())) == 2


def test_server_connections_are_bounded_and_a_url_setting_wins() -> None:
    from coatnet_nas.search.storage import server_engine_kwargs

    pg = server_engine_kwargs("postgresql+psycopg2://u@h/db")
    assert pg["pool_pre_ping"] and pg["connect_args"]["connect_timeout"] == 10
    mine = server_engine_kwargs("postgresql://u@h/db?connect_timeout=3&keepalives_idle=5")
    assert "connect_timeout" not in mine["connect_args"]  # the URL's own value reaches libpq
    assert "keepalives_idle" not in mine["connect_args"] and mine["connect_args"]["keepalives"]
    assert "connect_args" not in server_engine_kwargs("mysql+pymysql://u@h/db")


def test_database_restart_mid_trial_is_waited_out_and_the_trial_recorded(tmp_path, postgres_url):
    argv = [
        "search",
        "--space",
        _space(tmp_path, 60),
        "--storage",
        postgres_url,
        "--study",
        "restart",
        "--trials",
        "2",
        "--device",
        "cpu",
        "--sampler",
        "random",
        "--pruner",
        "none",
        "--heartbeat",
        "5",
        "--json",
        "--out",
        str(tmp_path / "out"),
    ]
    proc = coatnet_process(*argv)
    victim = _wait_running(postgres_url, "restart", proc)
    start = _stop_server(postgres_url)  # away for a few seconds, as a restart or failover
    time.sleep(4)
    _pg_ctl(*start)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and err.strip() == "", err
    trials = optuna.load_study(study_name="restart", storage=postgres_url).get_trials()
    kept = trials[victim.number]
    assert kept.state == TrialState.COMPLETE and kept.user_attrs["status"] == "ok"
    assert kept.value is not None and kept.user_attrs["val_accuracy"] is not None
    assert len(evaluated_trials(trials)) == 2
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def test_database_away_past_the_window_keeps_the_result_in_the_journal(tmp_path, postgres_url):
    journal = tmp_path / "journal"
    # PYTHONFAULTHANDLER: a search that does not exit is made to print where it is stuck.
    env = {
        "COATNET_STORAGE_RETRY": "3s",
        "COATNET_JOURNAL": str(journal),
        "PYTHONFAULTHANDLER": "1",
    }
    argv = [
        "search",
        "--space",
        _space(tmp_path, 80),
        "--storage",
        postgres_url,
        "--study",
        "away",
        "--trials",
        "1",
        "--device",
        "cpu",
        "--sampler",
        "random",
        "--pruner",
        "none",
        "--heartbeat",
        "5",
        "--json",
        "--out",
        str(tmp_path / "out"),
    ]
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        proc = coatnet_process(*argv)
        victim = _wait_running(postgres_url, "away", proc)
        start = _stop_server(postgres_url)
        try:
            # A bound on a hang, not a speed check: the rest of the training runs first, which
            # took 6-11 s with both cores busy and up to 70 s behind three higher-priority hogs.
            _, err = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGABRT)  # the fault handler prints every thread's stack
            pytest.fail(f"the search did not exit: {proc.communicate(timeout=60)[1][-6000:]}")
        finally:
            _pg_ctl(*start)
        assert proc.returncode == 2, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: --storage"), err
        assert "unreachable" in err and str(journal) in err and "Traceback" not in err
        files = list(journal.rglob("*.json"))
        assert len(files) == 1, (err, list(journal.rglob("*")))
        # The next run against this storage records the finished training, then goes on.
        rerun = coatnet_process(*argv)
        _, err = rerun.communicate(timeout=240)
        assert rerun.returncode == 0, err
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    assert not list(journal.rglob("*.json"))
    trials = optuna.load_study(study_name="away", storage=postgres_url).get_trials()
    kept = trials[victim.number]
    assert kept.state == TrialState.COMPLETE and kept.user_attrs["status"] == "ok", kept.user_attrs
    assert kept.value == kept.user_attrs["val_accuracy"] is not None
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_another_programs_database_with_optuna_table_names_is_left_byte_identical(tmp_path):
    app = tmp_path / "app.db"
    con = sqlite3.connect(app)
    con.execute("CREATE TABLE studies (id INTEGER PRIMARY KEY, title TEXT, year INTEGER)")
    con.execute("CREATE TABLE trials (id INTEGER PRIMARY KEY, study INTEGER, outcome TEXT)")
    con.execute("INSERT INTO studies VALUES (1, 'aspirin', 1999)")
    con.commit()
    con.close()
    space = write(tmp_path, yaml.safe_dump(tiny_space()), "space.yaml")
    before, listing = _digest(app), sorted(os.listdir(tmp_path))
    proc = coatnet_process(
        "search",
        "--space",
        str(space),
        "--storage",
        f"sqlite:///{app}",
        "--study",
        "x",
        "--trials",
        "1",
        "--proxy",
        "params",
        "--device",
        "cpu",
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "not an Optuna study storage" in err and "studies" in err, err
    after = sorted(os.listdir(tmp_path))
    assert _digest(app) == before and after == listing, after


def test_a_real_optuna_storage_and_an_empty_postgres_database_are_accepted(tmp_path, postgres_url):
    path = tmp_path / "real.db"
    optuna.create_study(storage=f"sqlite:///{path}", study_name="other")
    make_storage(f"sqlite:///{path}", None)  # Optuna's schema: fine
    engine = sqlalchemy.create_engine(postgres_url)
    with engine.begin() as con:
        con.execute(sqlalchemy.text("CREATE SCHEMA IF NOT EXISTS app"))
    engine.dispose()
    make_storage(postgres_url, None)  # Optuna's tables (earlier tests) in the default schema


def test_a_foreign_postgres_database_is_refused_unchanged(postgres_url):
    base = postgres_url.rsplit("/", 1)[0]
    engine = sqlalchemy.create_engine(f"{base}/coatnet", isolation_level="AUTOCOMMIT")
    with engine.connect() as con:
        con.execute(sqlalchemy.text("DROP DATABASE IF EXISTS appdb"))
        con.execute(sqlalchemy.text("CREATE DATABASE appdb"))
    engine.dispose()
    app = sqlalchemy.create_engine(f"{base}/appdb")
    with app.begin() as con:
        con.execute(sqlalchemy.text("CREATE TABLE studies (id int, title text)"))
    from coatnet_nas.errors import CoatnetError

    with pytest.raises(CoatnetError, match="not an Optuna study storage"):
        make_storage(f"{base}/appdb", None)
    assert set(sqlalchemy.inspect(app).get_table_names()) == {"studies"}
    app.dispose()


def test_a_trial_its_worker_never_claimed_is_reaped_and_requeued(tmp_path):
    # kill -9 between popping a queued trial and recording its process: no pid, no heartbeat
    # (a new trial is created with its pid: liveness.ask_claimed; Optuna's own ask is not).
    from coatnet_nas.search.liveness import reap

    url = f"sqlite:///{tmp_path}/u.db"
    study = optuna.create_study(study_name="u", storage=make_storage(url, heartbeat_interval=1))
    study.enqueue_trial({"x": 2}, user_attrs={"rung": 1})
    with warnings.catch_warnings():  # heartbeats "meant for optimize": the runner's are its own
        warnings.simplefilter("ignore", UserWarning)
        queued = study.ask()  # popped RUNNING, never claimed, killed before drawing "x"
        orphan = study.ask()  # created RUNNING, never claimed, nothing drawn
    assert reap(study) == 0 and {t.state for t in study.get_trials()} == {TrialState.RUNNING}
    time.sleep(4.5)  # 4 heartbeat intervals
    reap(study)
    trials = study.get_trials()
    for t in (queued, orphan):
        assert trials[t.number].state == TrialState.FAIL
        assert trials[t.number].user_attrs["status"] == "worker_died"
    # the queued candidate runs again, whole; the orphan had drawn nothing: nothing to re-run
    (again,) = trials[2:]
    assert again.state == TrialState.WAITING and again.user_attrs["retry_of"] == queued.number
    assert again.system_attrs["fixed_params"] == {"x": 2} and again.user_attrs["rung"] == 1
