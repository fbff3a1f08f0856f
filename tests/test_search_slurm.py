"""``--launcher slurm``: workers as a job array through submitit, run here by its local executor
(real processes, no SLURM), on one PostgreSQL study."""

from __future__ import annotations

import shutil

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
        240, 90, 1440, 31, 3240,
    ]  # fmt: skip
    for bad in ("4h", "", "0:30", "1:2:3:4"):
        with pytest.raises(CoatnetError, match="slurm time"):
            parse_slurm_time(bad)
    with pytest.raises(CoatnetError, match="cpus_per_task must be > 0"):
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
        code = run([*base, "--storage", "postgresql+psycopg2://nobody@127.0.0.1:1/x",
                    "--launcher", "slurm", "--workers", "2"])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and "sbatch" in err and "Traceback" not in err
    assert not (tmp_path / "a.db").exists()  # refused before any storage was made


def test_a_job_array_of_workers_fills_one_postgres_study(pg_url, tmp_path) -> None:
    space = load_space(write(tmp_path, yaml.safe_dump(tiny_space()), "space.yaml"))
    config = SearchConfig(space=space, flops=40e6, seed=3)
    logs = tmp_path / "slurm"
    study = run_search(
        config,
        storage_url=pg_url,
        study_name="array",
        trials=4,
        workers=2,
        sampler="random",
        pruner="none",
        device="cpu",
        launcher="slurm",
        slurm=SlurmOptions(cluster="local", folder=str(logs / "%j"), time="10"),
    )
    trials = optuna.load_study(study_name="array", storage=pg_url).get_trials()
    assert len(evaluated_trials(trials)) >= 4
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    pids = {t.user_attrs.get("pid") for t in evaluated_trials(trials)}
    assert len(pids) >= 1 and study.study_name == "array"
    # two array tasks ran (submitit's local executor: one folder of logs per task)
    outs = sorted(p.name for p in logs.rglob("*_log.out"))
    assert len(outs) == 2, outs
