"""SIGTERM (preemption) is a first Ctrl-C: search, worker and train, as real processes.

A trial in flight ends ``interrupted`` and is re-queued, the process says one line and exits
143; ``coatnet train`` checkpoints first, and the same command line with ``--resume auto``
continues exactly where the uninterrupted run would be.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from tests.conftest import (
    coatnet_process,
    study_trials,
    tiny_space,
    training,
    wait_for_trials,
    write,
)

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _wait_running(url: str, name: str, proc: subprocess.Popen, seconds: float = 120) -> list:
    return wait_for_trials(url, name, lambda trials: training(trials[-1]), proc, seconds)


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _space(tmp_path) -> str:
    space = tiny_space(steps=None, seconds=3.0, epochs=None)
    space["budget"] = {"flops": "1G"}  # every trial trains
    return str(write(tmp_path, yaml.safe_dump(space), "space.yaml"))


def _assert_requeued(url: str, name: str, number: int) -> None:
    after = study_trials(url, name)
    stopped = after[number]
    assert stopped.state == TrialState.FAIL and stopped.user_attrs["status"] == "interrupted"
    queued = [t for t in after if t.state == TrialState.WAITING]
    assert len(queued) == 1 and queued[0].system_attrs["fixed_params"] == stopped.params
    assert not [t for t in after if t.state == TrialState.RUNNING]


@pytest.mark.parametrize("command", ["search", "worker"])
def test_sigterm_requeues_the_trial_says_one_line_and_exits_143(tmp_path, command):
    url = f"sqlite:///{tmp_path}/t.db"
    common = ["--storage", url, "--study", "t", "--device", "cpu"]
    search = [
        "search",
        "--space",
        _space(tmp_path),
        *common,
        "--sampler",
        "random",
        "--pruner",
        "none",
        "--json",
        "--out",
        str(tmp_path / "out"),
    ]
    if command == "worker":  # a study with a target to join: create it without training
        first = coatnet_process(*search, "--trials", "1", "--timeout", "0.001s")
        assert first.wait(timeout=120) == 0, first.communicate()[1]
        argv = ["worker", *common, "--trials", "3"]
    else:
        argv = [*search, "--trials", "3"]
    proc = coatnet_process(*argv)
    running = _wait_running(url, "t", proc)
    proc.send_signal(signal.SIGTERM)  # the process alone, as SLURM, kubelet and timeout do
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    line = _one_line(err)
    assert line.startswith("interrupted (SIGTERM):") and "re-queued" in line
    _assert_requeued(url, "t", running[-1].number)


def test_sigterm_with_local_workers_requeues_every_trial(tmp_path):
    url = f"sqlite:///{tmp_path}/w.db"
    proc = coatnet_process(
        "search",
        "--space",
        _space(tmp_path),
        "--storage",
        url,
        "--study",
        "w",
        "--device",
        "cpu",
        "--sampler",
        "random",
        "--pruner",
        "none",
        "--trials",
        "6",
        "--workers",
        "2",
        "--json",
        "--out",
        str(tmp_path / "out"),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.3)
        pids = {t.user_attrs.get("pid") for t in study_trials(url, "w") if training(t)}
        if len(pids - {None}) == 2:  # both workers training (past drawing)
            break
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("never saw both workers running")
    os.killpg(proc.pid, signal.SIGTERM)  # every process of the job, as SLURM does
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 143, err
    assert _one_line(err).startswith("interrupted (SIGTERM):")
    after = study_trials(url, "w")
    assert not [t for t in after if t.state == TrialState.RUNNING]
    stopped = [t for t in after if t.user_attrs.get("status") == "interrupted"]
    queued = [t for t in after if t.state == TrialState.WAITING]
    assert stopped and sorted(t.user_attrs["retry_of"] for t in queued) == sorted(
        t.number for t in stopped
    )


TRAIN = [
    "--dataset",
    "synthetic:256",
    "--image-size",
    "32",
    "--steps",
    "40",
    "--batch-size",
    "16",
    "--eval-every",
    "10",
    "--precise-bn",
    "0",
    "--device",
    "cpu",
    "--threads",
    "1",
    "--json",
]


def _spec(tmp_path) -> str:
    spec = {
        "name": "tiny",
        "layout": "C-C-T-T",
        "depths": [1, 1, 1, 1, 1],
        "widths": [8, 8, 16, 16, 32],
        "image_size": 32,
        "num_classes": 10,
        "transformer": {"head_dim": 8},
    }
    return str(write(tmp_path, yaml.safe_dump(spec), "tiny.yaml"))


def test_sigterm_checkpoints_train_and_resume_auto_continues_exactly(tmp_path):
    spec = _spec(tmp_path)
    whole = coatnet_process("train", spec, *TRAIN)
    out, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, err
    expected = json.loads(out)

    ck = tmp_path / "run.pt"
    argv = ["train", spec, *TRAIN, "--save", str(ck), "--resume", "auto"]
    first = coatnet_process(*argv, "--save-every", "0")  # fresh: nothing at --save yet
    deadline = time.monotonic() + 120
    while not ck.exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
    first.send_signal(signal.SIGTERM)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 143, (out, err)
    assert out == ""  # no JSON result: the run did not finish
    line = _one_line(err)
    assert line.startswith("interrupted (SIGTERM): stopped at step") and "--resume" in line
    assert f"checkpoint saved to {ck}" in line
    saved = torch.load(ck, weights_only=True)["train"]
    assert not saved["finished"] and 0 < saved["step"] < 40

    again = coatnet_process(*argv)  # the same command line, as a requeued job repeats it
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    resumed = json.loads(out)
    assert resumed["resumed_from"] == str(ck)
    for key in ("steps", "val_accuracy", "train_loss", "train_accuracy", "best_val_accuracy"):
        assert resumed[key] == expected[key], key


def test_resume_auto_needs_save_and_starts_fresh_without_a_file(tmp_path):
    spec = _spec(tmp_path)
    short = [a if a != "40" else "4" for a in TRAIN]
    proc = coatnet_process("train", spec, *short, "--resume", "auto")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "--resume auto" in err and "--save" in err, err
    ck = tmp_path / "sub" / "fresh.pt"
    proc = coatnet_process("train", spec, *short, "--save", str(ck), "--resume", "auto")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads(out)["resumed_from"] is None and ck.is_file()


def test_sigterm_on_another_long_command_is_one_line_and_143(tmp_path):
    # The same contract for every long-running command (here: measuring a latency table).
    space = tiny_space()
    path = write(tmp_path, yaml.safe_dump(space), "space.yaml")
    proc = coatnet_process(
        "latency",
        "table",
        "--space",
        str(path),
        "--out",
        str(tmp_path / "t.json"),
        "--repeats",
        "200",
        "--calibration",
        "50",
    )
    deadline = time.monotonic() + 90
    while not (tmp_path / "t.json").exists() and proc.poll() is None:  # a round measured
        assert time.monotonic() < deadline, "no round measured in 90 s"
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert _one_line(err).startswith("interrupted (SIGTERM):")
    saved = json.loads((tmp_path / "t.json").read_text())  # what was measured, and why it stopped
    assert saved["interrupted"] == "SIGTERM" and saved["complete"] is False


def test_sigterm_mid_compare_records_the_run_in_flight(tmp_path):
    from tests.test_compare_run import BASE_YAML, FAST

    base = write(tmp_path, BASE_YAML, "tiny.yaml")
    out = tmp_path / "cmp"
    fast = [*FAST]
    fast[fast.index("--steps") + 1] = "30"  # runs long enough to be caught in flight
    proc = coatnet_process("compare", "--base", str(base), *fast, "--out", str(out))
    runs = out / "runs.jsonl"
    deadline = time.monotonic() + 90
    while not (runs.exists() and runs.read_text().strip()) and proc.poll() is None:
        assert time.monotonic() < deadline, "no run finished in 90 s"
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert _one_line(err).startswith("interrupted (SIGTERM):")
    why = json.loads((out / "interrupted.json").read_text())
    stored = len(runs.read_text().splitlines())
    assert why["interrupted"] == "SIGTERM" and why["finished"] == stored >= 1
    assert why["left"] == 20 - stored
    # the run in training when the signal came (none if it fell between two runs): not stored
    done = {json.loads(line)["key"] for line in runs.read_text().splitlines()}
    assert len(why["in_flight"]) <= 1 and not done & set(why["in_flight"])
