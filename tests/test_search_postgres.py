"""Scale-out on a real PostgreSQL server: three worker processes share one study."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from coatnet_nas.search import SearchConfig, run_search, space_from_dict
from tests.conftest import ROOT, postgres_server, tiny_space


@pytest.fixture(scope="module")
def postgres_url():
    try:
        with postgres_server() as url:
            yield url
    except FileNotFoundError as exc:
        if os.environ.get("CI"):
            raise  # CI installs PostgreSQL: a missing server there is a real failure
        pytest.skip(str(exc))


def test_three_workers_and_a_joining_worker_on_postgres(postgres_url):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = space_from_dict(tiny_space())
    config = SearchConfig(space=space, flops=space.budget.flops, seed=0)
    study = run_search(
        config,
        postgres_url,
        "pg",
        trials=6,
        workers=3,
        sampler="random",
        heartbeat_interval=5,
        device="cpu",
    )
    trials = study.get_trials()
    assert 6 <= len(trials) <= 8  # workers in flight may each finish one last trial
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)

    # Another "machine" joins with the documented command and adds two trials.
    before = len(trials)
    joined = subprocess.run(
        [
            sys.executable,
            "-c",
            "from coatnet_nas.cli import main; main()",
            "worker",
            "--storage",
            postgres_url,
            "--study",
            "pg",
            "--trials",
            "2",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert joined.returncode == 0, joined.stderr
    trials = optuna.load_study(study_name="pg", storage=postgres_url).get_trials()
    assert len(trials) == before + 2
    assert sorted(t.number for t in trials) == list(range(before + 2))
    assert len({t._trial_id for t in trials}) == len(trials)
