"""Data-parallel training on real processes: gloo on CPU, torch's elastic agent, kill -9.

Every run is a real ``coatnet train`` subprocess in its own session with a timeout, so a hang
fails the test and no straggler survives it (the whole process group is killed).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from coatnet_nas.data.devices import worker_device
from coatnet_nas.train import distributed
from coatnet_nas.train.distributed import free_port, launch_local

SPEC = """\
name: tiny
layout: C-C-T-T
depths: [1, 1, 1, 1, 1]
widths: [8, 8, 16, 16, 32]
image_size: 32
num_classes: 10
transformer: {head_dim: 8}
"""
ROOT = Path(__file__).resolve().parents[1]
BASE = [
    "--dataset",
    "synthetic:256",
    "--batch-size",
    "32",
    "--device",
    "cpu",
    "--threads",
    "1",
    "--precise-bn",
    "2",
    "--json",
]
TIMEOUT = 240


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SPEC)
    return path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _start(args: list[str], module: list[str] | None = None) -> subprocess.Popen:
    cmd = module or [sys.executable, "-c", "from coatnet_nas.cli import main; main()", "train"]
    return subprocess.Popen(
        [*cmd, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=ROOT,
        start_new_session=True,
    )


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL the whole session (the launcher and every rank it started)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def train(args: list[str], module: list[str] | None = None) -> tuple[int, dict | None, str]:
    proc = _start(args, module)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill(proc)
        pytest.fail(f"training hung for {TIMEOUT}s: {args}")
    finally:
        if proc.poll() is None:
            _kill(proc)
    return proc.returncode, (json.loads(out) if out.strip().startswith("{") else None), err


def _losses(result: dict) -> list[float]:
    return [h["train_loss"] for h in result["history"]]


def test_two_processes_match_one_with_the_same_global_batch(spec: Path) -> None:
    args = [str(spec), *BASE, "--steps", "6", "--eval-every", "2", "--no-augment"]
    code1, one, err1 = train(args)
    code2, two, err2 = train([*args, "--nproc", "2"])
    assert code1 == 0 and code2 == 0, err1 + err2
    assert two["world_size"] == 2 and two["images_seen"] == one["images_seen"] == 6 * 32
    # Same data, same global batch, same averaged gradients: the curves differ only by the
    # BatchNorm statistics (per-rank slices of 16 instead of the batch of 32; SyncBatchNorm has
    # no CPU kernel) and float summation order. Measured gap here: < 2e-3; allowed: 2e-2.
    gaps = [abs(a - b) for a, b in zip(_losses(one), _losses(two), strict=True)]
    assert max(gaps) < 2e-2, gaps
    assert len(err2.strip().splitlines()) <= 2, err2  # rank 1 prints nothing


def test_kill_9_mid_run_then_resume_reaches_the_uninterrupted_result(
    spec: Path, tmp_path: Path
) -> None:
    args = [
        str(spec),
        *BASE,
        "--steps",
        "40",
        "--eval-every",
        "10",
        "--nproc",
        "2",
        "--drop-path",
        "0.2",
    ]
    code, full, err = train(args)
    assert code == 0, err
    ck = tmp_path / "run.pt"
    proc = _start([*args, "--save", str(ck), "--save-every", "0"])
    step, deadline = 0, time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if ck.exists():
                step = torch.load(ck, weights_only=True)["train"]["step"]
                if step >= 3:
                    break
            time.sleep(0.02)
    finally:
        _kill(proc)  # kill -9 of the launcher and both ranks
    assert 3 <= step < 40, f"the run was not caught mid-way (step {step})"
    code, resumed, err = train([*args, "--resume", str(ck)])
    assert code == 0, err
    assert resumed["steps"] == 40 and resumed["status"] == "ok"
    # Each rank's stochastic depth is seeded from (seed, rank, step), the data order and
    # augmentation from the stored sampler: on CPU the resumed run reproduces the uninterrupted
    # one; allowed: 1e-5 on the loss, equal accuracy.
    assert abs(resumed["train_loss"] - full["train_loss"]) < 1e-5
    assert resumed["val_accuracy"] == full["val_accuracy"]
    assert [h["step"] for h in resumed["history"]] == [h["step"] for h in full["history"]]
    final = torch.load(ck, weights_only=True)
    assert final["train"]["finished"] and final["train"]["step"] == 40


def test_torchrun_runs_the_train_module(spec: Path) -> None:
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(free_port()),
        "-m",
        "coatnet_nas.cli",
        "train",
    ]
    code, result, err = train([str(spec), *BASE, "--steps", "4"], module=torchrun)
    assert code == 0, err
    assert result["world_size"] == 2 and result["steps"] == 4


def _many_collectives(calls: int) -> dict:
    """One rank of the test below: sum counts ``calls`` times, then leave the session."""
    cpu = torch.device("cpu")
    with distributed.distributed_session("cpu") as (world, _):
        sums, most_held = [], 0
        for _ in range(calls):
            sums.append(world.sum_ints(1, world.rank, device=cpu))
            most_held = max(most_held, len(distributed._HELD))
    return {"sums": sums, "most_held": most_held, "left": len(distributed._HELD)}


def test_collective_tensors_outlive_the_backend_threads_then_are_freed() -> None:
    # gloo's threads drop a finished all_reduce's tensor on their own thread, sometimes after
    # wait() returned; were Python's reference gone by then, that thread would need the GIL,
    # and at interpreter exit that ends in std::terminate (SIGABRT, a CI failure once). The
    # tensors are held until the backend lets go: few at a time, none once the session ends.
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    results = launch_local(2, _many_collectives, (300,))
    # the caller's handlers are back (the agent's left behind turned a later Ctrl-C into its own
    # SignalException)
    assert {s: signal.getsignal(s) for s in handlers} == handlers
    for result in results.values():
        assert result["sums"] == [[2, 1]] * 300
        assert 1 <= result["most_held"] <= 8 and result["left"] == 0


def test_uneven_global_batch_is_a_user_error(spec: Path) -> None:
    code, _, err = train([str(spec), *BASE, "--steps", "2", "--batch-size", "33", "--nproc", "2"])
    assert code == 2
    assert "--batch-size 33" in err and "multiple of 2" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("device", "index", "visible", "expected"),
    [
        ("cuda", 0, 4, "cuda:0"),
        ("cuda", 5, 4, "cuda:1"),
        ("auto", 3, 2, "cuda:1"),
        ("auto", 3, 0, "cpu"),
        ("cpu", 2, 8, "cpu"),
        ("cuda:3", 0, 8, "cuda:3"),
        ("CUDA", 1, 2, "cuda:1"),
    ],
)
def test_worker_device_spreads_workers_over_gpus(device, index, visible, expected) -> None:
    assert worker_device(device, index, visible) == expected
