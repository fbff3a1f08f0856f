"""Shared fixtures: repo paths, tiny specs and search spaces, and a throwaway PostgreSQL server."""

from __future__ import annotations

import contextlib
import copy
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"


@pytest.fixture(autouse=True, scope="session")
def _private_data_cache(tmp_path_factory) -> Iterator[None]:
    """Prepared data caches go to a folder of this test session (subprocesses inherit it), never
    to the user's cache: tests neither depend on nor leave behind what a real run prepared."""
    old = os.environ.get("COATNET_CACHE")
    os.environ["COATNET_CACHE"] = str(tmp_path_factory.mktemp("coatnet-cache"))
    yield
    if old is None:
        os.environ.pop("COATNET_CACHE", None)
    else:
        os.environ["COATNET_CACHE"] = old


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture
def tiny_compact() -> dict:
    return {
        "name": "tiny",
        "layout": "C-C-T-T",
        "depths": [1, 1, 2, 2, 1],
        "widths": [16, 16, 32, 64, 64],
        "image_size": 64,
        "num_classes": 10,
        "transformer": {"head_dim": 16},
    }


def coatnet_process(*args: str) -> subprocess.Popen:
    """``coatnet ARGS`` as a real process in its own session (tests kill or interrupt it)."""
    return subprocess.Popen(
        [sys.executable, "-c", "from coatnet_nas.cli import main; main()", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )


def kill_9_after_save(proc: subprocess.Popen, path: Path, at_least: int, timeout: float) -> int:
    """SIGKILL ``proc``'s process group once the checkpoint ``path`` holds step ``at_least`` or
    later; the step it holds then. The group is stopped (SIGSTOP) while the file is read and
    runs only ~10 ms between reads, so a fast run cannot finish between a read and the kill."""
    step, deadline = -1, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if path.exists():
                os.killpg(proc.pid, signal.SIGSTOP)
                try:
                    step = torch.load(path, weights_only=True)["train"]["step"]
                except Exception:  # a save written as a new file and renamed: never partial
                    step = -1
                if step >= at_least:
                    break
                os.killpg(proc.pid, signal.SIGCONT)
            time.sleep(0.01)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    return step


def study_trials(url: str, name: str) -> list:
    """The trials of study ``name`` in ``url`` (none yet: the study is not created)."""
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=url).get_trials()
    except KeyError:
        return []


def wait_for_trials(
    url: str, name: str, ready, proc: subprocess.Popen, seconds: float = 120
) -> list:
    """Poll study ``name`` until ``ready(trials)``; the trials then. Kills ``proc``'s session and
    fails the test if it ends or ``seconds`` pass first (the kill-9 and signal tests' harness)."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.3)
        trials = study_trials(url, name)
        if trials and ready(trials):
            return trials
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"never reached the state to interrupt; stderr: {proc.communicate()[1][-2000:]}")


def training(t) -> bool:
    """``t`` runs and is past drawing its parameters (its spec is recorded): a candidate whose
    interruption must re-queue it (one killed mid-draw is no candidate yet, and is not)."""
    return t.state.name == "RUNNING" and "spec" in t.user_attrs


def training_after_complete(trials: list) -> bool:
    """The last trial is training and an earlier one completed."""
    return any(t.state.name == "COMPLETE" for t in trials) and training(trials[-1])


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- a throwaway PostgreSQL server (Debian binaries; runs as 'postgres' under root) ---


def tiny_train(spec: Path | str, *extra: str) -> list[str]:
    """``coatnet train SPEC``: two steps of 16 synthetic images, one CPU thread, then ``extra``."""
    return [
        "train",
        str(spec),
        "--dataset",
        "synthetic:200",
        "--steps",
        "2",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--threads",
        "1",
        *extra,
    ]


def _bindir() -> str | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    return (
        os.path.dirname(found[-1])
        if found
        else (os.path.dirname(shutil.which("pg_ctl")) if shutil.which("pg_ctl") else None)
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield an SQLAlchemy URL of a fresh database; stop and delete the server afterwards."""
    bindir = _bindir()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries not found (apt-get install postgresql)")
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    datadir = tempfile.mkdtemp(prefix="coatnet-pg-")
    if as_root:
        shutil.chown(datadir, "postgres", "postgres")
    port = _free_port()

    def pg(tool: str, *args: str) -> None:
        subprocess.run(
            [*prefix, f"{bindir}/{tool}", *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=datadir,
        )

    try:
        pg("initdb", "-D", datadir, "-U", "coatnet", "--auth=trust", "-E", "UTF8")
        pg(
            "pg_ctl",
            "-D",
            datadir,
            "-l",
            f"{datadir}/server.log",
            "-w",
            "-o",
            f"-p {port} -k {datadir} -c listen_addresses=127.0.0.1 -c max_connections=100",
            "start",
        )
        try:
            pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "coatnet", "coatnet")
            yield f"postgresql+psycopg2://coatnet@127.0.0.1:{port}/coatnet"
        finally:
            pg("pg_ctl", "-D", datadir, "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(datadir, ignore_errors=True)


# --- a tiny search space on the synthetic data set (trials take about a second) ---


TINY_SPACE = {
    "name": "tiny",
    "layouts": ["C-T", "C-C", "T-T"],
    "stem_depth": 1,
    "depths": [[1, 2], [1, 2]],
    "widths": [[16], [32, 64], [32, 64, 96]],
    "transformer": {"head_dim": [32]},
    "target": {"image_size": 64, "num_classes": 10},
    "budget": {"flops": "40M"},
    "proxy": {
        "dataset": "synthetic:400",
        "image_size": 16,
        "width_mult": 0.5,
        "epochs": None,
        "steps": 4,
        "subset": 1.0,
        "batch_size": 32,
        "evals_per_epoch": 1,
    },
}


def tiny_space(**proxy) -> dict:
    space = copy.deepcopy(TINY_SPACE)
    space["proxy"].update(proxy)
    return space


# Statuses of a trained or scored trial (written out: the tests also run against older code).
EVALUATED_STATUSES = {"ok", "budget", "stopped", "pruned", "diverged", "invalid_score"}


def evaluated_trials(trials: list) -> list:
    """Trials that were really trained or scored (not over budget, not a told repeat)."""
    return [
        t
        for t in trials
        if t.state.is_finished()
        and t.user_attrs.get("status") in EVALUATED_STATUSES
        and "duplicate_of" not in t.user_attrs
    ]
