"""``--launcher slurm``: workers as a job array through submitit, run here by its local executor
(real processes, no SLURM), on one PostgreSQL study."""

from __future__ import annotations

import os
import shutil
import signal
import threading

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from coatnet_nas.cli import run
from coatnet_nas.errors import CoatnetError
from coatnet_nas.search import SearchConfig, load_space, run_search
from coatnet_nas.search.launchers import Launcher, SlurmOptions, parse_slurm_time
from tests.conftest import evaluated_trials, postgres_server, tiny_space, write

pytest.importorskip("submitit")


@pytest.fixture(scope="module")
def pg_url():
    try:
        with postgres_server() as url:
            yield url
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def test_slurm_times_and_settings_are_checked() -> None:
    assert [parse_slurm_time(t) for t in ("4:00:00", "90", "1-00:00:00", "30:30", "2-6")] == [
        240,
        90,
        1440,
        31,
        3240,
    ]
    for bad in ("4h", "", "0:30", "1:2:3:4"):
        with pytest.raises(CoatnetError, match=r"slurm\.time"):
            parse_slurm_time(bad)
    with pytest.raises(CoatnetError, match=r"slurm\.cpus_per_task must be > 0"):
        SlurmOptions(cpus_per_task=0).checked()
    assert Launcher.parse("slurm") is Launcher.SLURM
    with pytest.raises(CoatnetError, match="local, slurm"):
        Launcher.parse("pbs")


def test_cli_refuses_sqlite_no_sbatch_and_stray_slurm_flags(tmp_path, capsys) -> None:
    space = write(tmp_path, yaml.safe_dump(tiny_space()), "space.yaml")
    base = ["search", "--space", str(space), "--trials", "1", "--device", "cpu"]
    code = run([*base, "--storage", f"sqlite:///{tmp_path}/a.db", "--launcher", "slurm"])
    err = capsys.readouterr().err
    assert code == 2 and "PostgreSQL" in err and "Traceback" not in err
    code = run([*base, "--slurm-partition", "gpu"])
    assert code == 2 and "--launcher slurm" in capsys.readouterr().err
    if shutil.which("sbatch") is None:
        code = run(
            [
                *base,
                "--storage",
                "postgresql+psycopg2://nobody@127.0.0.1:1/x",
                "--launcher",
                "slurm",
                "--workers",
                "2",
            ]
        )
        err = capsys.readouterr().err
        assert code == 2 and "sbatch" in err and "Traceback" not in err
    assert not (tmp_path / "a.db").exists()  # refused before any storage was made


def _signal_first_running_trial(url: str, signum: int, sent: list, done) -> None:
    """Send ``signum`` to the process running the first RUNNING trial, once it has run for a
    second (well into its training, which lasts seconds more: a signal that lands after the
    result is told rightly leaves the trial COMPLETE). Plain SQL: the schema is the search's to
    create, and a second creator would race it."""
    import datetime

    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    query = sqlalchemy.text(
        "SELECT t.number, a.value_json, t.datetime_start FROM trials t "
        "JOIN trial_user_attributes a ON a.trial_id = t.trial_id "
        "WHERE t.state = 'RUNNING' AND a.key = 'pid' "
        "AND EXISTS (SELECT 1 FROM trial_user_attributes s WHERE s.trial_id = t.trial_id "
        "AND s.key = 'spec') ORDER BY t.number LIMIT 1"
    )
    try:
        while not done.wait(0.2):
            try:
                with engine.connect() as db:
                    row = db.execute(query).first()
            except sqlalchemy.exc.SQLAlchemyError:  # no tables yet
                continue
            if row is None or row[2] is None:
                continue
            # Optuna stamps datetime_start with the local naive time
            if datetime.datetime.now() - row[2] >= datetime.timedelta(seconds=1):
                os.kill(int(row[1]), signum)
                sent.append(int(row[0]))
                return
    finally:
        engine.dispose()


def test_a_job_array_of_workers_fills_one_postgres_study(pg_url, tmp_path) -> None:
    space = tiny_space(steps=None, seconds=5, epochs=None)
    space["budget"] = {"flops": "1G"}  # every draw trains
    config = SearchConfig(
        space=load_space(write(tmp_path, yaml.safe_dump(space), "space.yaml")),
        flops=1e9,
        seed=3,
    )
    logs = tmp_path / "slurm"
    sent: list = []
    done = threading.Event()
    # submitit's timeout signal (SIGUSR2) reaches one task mid-trial: the task re-queues its
    # trial in the study and is requeued itself, as on SLURM ahead of --slurm-time
    spy = threading.Thread(
        target=_signal_first_running_trial, args=(pg_url, signal.SIGUSR2, sent, done)
    )
    spy.start()
    try:
        run_search(
            config,
            storage_url=pg_url,
            study_name="array",
            trials=3,
            workers=2,
            sampler="random",
            pruner="none",
            device="cpu",
            launcher="slurm",
            slurm=SlurmOptions(cluster="local", folder=str(logs / "%j"), time="10"),
        )
    finally:
        done.set()
        spy.join()
    trials = optuna.load_study(study_name="array", storage=pg_url).get_trials()
    assert len(evaluated_trials(trials)) >= 3
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert len(sent) == 1, "no trial was caught running"
    (number,) = sent
    stopped = trials[number]
    assert stopped.state == TrialState.FAIL and stopped.user_attrs["status"] == "interrupted"
    retried = [t for t in trials if t.user_attrs.get("retry_of") == number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].params == stopped.params
    text = "".join(p.read_text() for p in logs.rglob("*_log.*"))
    assert text.count("Requeued job") == 1, text[-3000:]  # the signalled task came back
    assert len(list(logs.rglob("*_result.pkl"))) == 2  # and both tasks finished
