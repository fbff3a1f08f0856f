"""Nothing lost or stuck: Ctrl-C, a killed local worker, and a joining worker's strategy.

Real processes, real signals, real SQLite files (the kill -9 + immediate re-run case is in
tests/test_search.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from coatnet_nas.search.liveness import ask_claimed, reap
from tests.conftest import (
    coatnet_process,
    evaluated_trials,
    study_trials,
    tiny_space,
    training,
    training_after_complete,
    wait_for_trials,
    write,
)

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _args(tmp_path, url: str, *extra: str) -> list[str]:
    space = tiny_space(steps=None, seconds=3.0, epochs=None)
    space["budget"] = {"flops": "1G"}  # every trial trains
    path = write(tmp_path, yaml.safe_dump(space), "space.yaml")
    return [
        "search",
        "--space",
        str(path),
        "--storage",
        url,
        "--study",
        "r",
        "--device",
        "cpu",
        "--sampler",
        "random",
        "--pruner",
        "none",
        "--heartbeat",
        "30",
        "--out",
        str(tmp_path / "out"),
        "--json",
        *extra,
    ]


def test_ctrl_c_ends_the_trial_as_interrupted_and_the_next_run_reruns_it(tmp_path):
    url = f"sqlite:///{tmp_path}/i.db"
    args = _args(tmp_path, url, "--trials", "5")
    proc = coatnet_process(*args)
    before = wait_for_trials(url, "r", training_after_complete, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted:"), err
    after = study_trials(url, "r")
    stopped = after[before[-1].number]
    assert stopped.state == TrialState.FAIL
    assert stopped.user_attrs["status"] == "interrupted"
    assert stopped.user_attrs["reason"] == "interrupted"
    queued = [t for t in after if t.state == TrialState.WAITING]
    assert len(queued) == 1 and queued[0].system_attrs["fixed_params"] == stopped.params

    args[args.index("--trials") + 1] = "1"
    rerun = coatnet_process(*args)
    _, err = rerun.communicate(timeout=180)
    assert rerun.returncode == 0, err
    final = study_trials(url, "r")
    assert not [t for t in final if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    again = [t for t in final if t.user_attrs.get("retry_of") == stopped.number]
    assert len(again) == 1 and again[0].state == TrialState.COMPLETE
    for t in before:
        if t.state == TrialState.COMPLETE:
            assert final[t.number].values == t.values


def test_a_killed_local_worker_does_not_stop_the_others_or_the_report(tmp_path):
    url = f"sqlite:///{tmp_path}/w.db"
    proc = coatnet_process(*_args(tmp_path, url, "--trials", "4", "--workers", "2"))

    def child_training(t) -> bool:
        return training(t) and t.user_attrs.get("pid") not in (None, proc.pid)

    trials = wait_for_trials(url, "r", lambda trials: any(map(child_training, trials)), proc)
    victim = next(t for t in trials if child_training(t))
    os.kill(victim.user_attrs["pid"], signal.SIGKILL)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 1, err  # a worker died: not a clean run, but a full report
    report = json.loads(out)
    assert any("local worker" in note and "signal 9" in note for note in report["notes"])
    assert (tmp_path / "out" / "trials.csv").exists()
    final = study_trials(url, "r")
    assert not [t for t in final if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    # the trial that child ran when killed (it may have moved on from ``victim`` meanwhile)
    died = [t for t in final if t.user_attrs.get("status") == "worker_died"]
    assert len(died) == 1 and died[0].user_attrs["pid"] == victim.user_attrs["pid"]
    assert died[0].state == TrialState.FAIL
    again = [t for t in final if t.user_attrs.get("retry_of") == died[0].number]
    assert len(again) == 1 and again[0].state == TrialState.COMPLETE
    trained = evaluated_trials(final)
    statuses = [(t.number, t.state.name, t.user_attrs.get("status")) for t in final]
    assert len(trained) == 4, statuses  # what the run was asked for (repeats are told)


def test_a_joining_worker_uses_the_study_strategy_and_prints_no_warnings(tmp_path):
    space = tiny_space()
    space["budget"] = {"flops": "1G"}
    path = write(tmp_path, yaml.safe_dump(space), "space.yaml")
    url = f"sqlite:///{tmp_path}/j.db"
    common = ["--storage", url, "--study", "j", "--device", "cpu"]
    create = coatnet_process(
        *[
            "search",
            "--space",
            str(path),
            *common,
            "--trials",
            "1",
            "--proxy",
            "params",
            "--sampler",
            "random",
            "--pruner",
            "none",
            "--heartbeat",
            "7",
            "--json",
        ]
    )
    assert create.wait(timeout=120) == 0
    join = coatnet_process(*["worker", *common, "--trials", "2"])
    _, err = join.communicate(timeout=120)
    assert join.returncode == 0, err
    assert "Warning" not in err
    study = optuna.load_study(study_name="j", storage=url)
    runs = [v for k, v in study.user_attrs.items() if k.startswith("coatnet_run:")]
    joined = [r for r in runs if r["trials"] == 2]
    assert len(joined) == 1
    assert joined[0]["sampler"] == "random" and joined[0]["pruner"] == "none"
    assert len(evaluated_trials(study.get_trials())) == 3  # told repeats do not count


@pytest.mark.parametrize("whole_group", [True, False], ids=["terminal-ctrl-c", "parent-only"])
def test_ctrl_c_with_local_workers_requeues_every_trial_in_flight(tmp_path, whole_group):
    # A terminal's Ctrl-C reaches the parent and its spawned workers (one process group); a
    # `kill -INT` of the parent alone must end the workers' trials the same way.
    url = f"sqlite:///{tmp_path}/c.db"
    args = _args(tmp_path, url, "--trials", "6", "--workers", "2")
    proc = coatnet_process(*args)

    def both_running(trials: list) -> bool:  # both workers training (past drawing)
        pids = {t.user_attrs.get("pid") for t in trials if training(t)}
        return len(pids - {None}) == 2 and TrialState.COMPLETE in {t.state for t in trials}

    before = wait_for_trials(url, "r", both_running, proc)
    in_flight = {t.number for t in before if t.state == TrialState.RUNNING}
    (os.killpg if whole_group else os.kill)(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted:"), err
    after = study_trials(url, "r")
    assert not [t for t in after if t.state == TrialState.RUNNING]
    # A trial seen running may still finish between that look and the signal (its last
    # ~0.3 s): kept as complete, not requeued. Every other one is failed as interrupted and
    # queued again exactly once.
    stopped = [t for t in after if t.number in in_flight and t.state != TrialState.COMPLETE]
    assert stopped, "no trial was caught in flight"
    assert all(t.state == TrialState.FAIL for t in stopped)
    assert {t.user_attrs["status"] for t in stopped} == {"interrupted"}
    in_flight = {t.number for t in stopped}
    queued = [t for t in after if t.state == TrialState.WAITING]
    assert sorted(t.user_attrs["retry_of"] for t in queued) == sorted(in_flight)

    args[args.index("--trials") + 1] = "2"
    rerun = coatnet_process(*args)
    _, err = rerun.communicate(timeout=240)
    assert rerun.returncode == 0, err
    final = study_trials(url, "r")
    assert not [t for t in final if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    for number in in_flight:
        again = [t for t in final if t.user_attrs.get("retry_of") == number]
        assert len(again) == 1 and again[0].state == TrialState.COMPLETE


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_trial_killed_mid_draw_is_failed_not_requeued_and_a_queued_one_keeps_its_params(
    tmp_path,
):
    """The windows a kill -9 can hit before training starts (the subprocess tests kill later).

    Created claimed: no moment at which a new RUNNING trial has no process id. Killed while drawing:
    failed, and not re-queued with half its parameters (that would run another architecture
    under its name). A queued trial (a promotion, a retry) killed while drawing is re-queued with
    its full fixed parameters.
    """
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/d.db", study_name="d")
    layout = optuna.distributions.CategoricalDistribution(["C-T", "T-T"])
    width = optuna.distributions.IntDistribution(16, 64)

    sampled = ask_claimed(study, "run-a")
    assert study._storage.get_trial(sampled._trial_id).user_attrs["pid"] == os.getpid()
    sampled.suggest_categorical("layout", ["C-T", "T-T"])  # killed before drawing "width"
    sampled.set_user_attr("pid", _dead_pid())
    assert reap(study) == 1
    frozen = study.trials[sampled.number]
    assert frozen.state == TrialState.FAIL and frozen.user_attrs["status"] == "worker_died"
    assert not [t for t in study.trials if t.state == TrialState.WAITING]

    study.enqueue_trial({"layout": "T-T", "width": 48}, user_attrs={"rung": 1, "seed": 0})
    queued = ask_claimed(study, "run-a")
    assert queued.user_attrs["rung"] == 1 and queued.user_attrs["run"] == "run-a"
    queued._suggest("layout", layout)  # killed before drawing "width"
    queued.set_user_attr("pid", _dead_pid())
    assert reap(study) == 1
    again = [t for t in study.trials if t.state == TrialState.WAITING]
    assert len(again) == 1 and again[0].user_attrs["retry_of"] == queued.number
    assert again[0].system_attrs["fixed_params"] == {"layout": "T-T", "width": 48}
    assert again[0].user_attrs["rung"] == 1

    drawn = ask_claimed(study, "run-b")  # pops the re-queued trial: drawn in full, then killed
    assert drawn.number == again[0].number
    drawn._suggest("layout", layout)
    drawn._suggest("width", width)
    drawn.set_user_attr("spec", {"layout": "T-T"})
    drawn.set_user_attr("pid", _dead_pid())
    assert reap(study) == 1
    retried = [t for t in study.trials if t.state == TrialState.WAITING]
    assert len(retried) == 1 and retried[0].system_attrs["fixed_params"] == drawn.params


def test_a_stop_while_the_result_is_told_keeps_the_result() -> None:
    """Ctrl-C landing inside ``tell`` (a slow SQLite write under load): the finished result is
    recorded, then the stop goes on; the trial was left RUNNING before."""
    from coatnet_nas.search.runner import run_trial

    study = optuna.create_study(direction="maximize")
    storage = study._storage
    real = storage.set_trial_state_values
    sent: list = []

    def interrupted_write(*args, **kwargs):
        if not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)  # a real signal: Python raises at the next line
            time.sleep(1.0)
        return real(*args, **kwargs)

    storage.set_trial_state_values = interrupted_write
    trial = study.ask()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # what a search runs with
    try:
        with pytest.raises(KeyboardInterrupt):
            run_trial(study, lambda _t: 0.5, trial)
    finally:
        signal.signal(signal.SIGINT, previous)
    (told,) = study.get_trials()
    assert sent and told.state == TrialState.COMPLETE and told.values == [0.5]
