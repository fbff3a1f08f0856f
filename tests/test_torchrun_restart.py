"""``torchrun --max-restarts 1``: a rank killed mid-run, the agent restarts the group, and the
same command line finishes the run from its checkpoint (not from step 0)."""

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

from coatnet_nas.train.distributed import free_port
from tests.test_distributed import BASE, SPEC, TIMEOUT, _kill, _start


def _step(ck: Path) -> int:
    try:
        return int(torch.load(ck, weights_only=True)["train"]["step"])
    except Exception:  # not there yet, or caught between two writes' renames
        return -1


def _rank_pid(agent: int, rank: int) -> int | None:
    """The process of ``rank`` among the children of torch's elastic agent ``agent``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == agent and f"RANK={rank}".encode() in env:
            return int(entry)
    return None


def _wait_for(ck: Path, proc: subprocess.Popen, at_least: int) -> int:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        step = _step(ck)
        if step >= at_least:
            return step
        time.sleep(0.02)
    return _step(ck)


def _resume_auto_supported(spec: Path, folder: Path) -> bool:
    """Whether ``--resume auto`` (start fresh without the --save file) is in this version: a
    one-step run with it either trains (yes) or is refused (no: the option takes a path)."""
    from coatnet_nas.cli import run

    probe = folder / "probe.pt"
    args = [
        "train",
        str(spec),
        "--dataset",
        "synthetic:64",
        "--batch-size",
        "32",
        "--steps",
        "1",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--save",
        str(probe),
        "--resume",
        "auto",
    ]
    return run(args) == 0 and probe.is_file()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX only")
def test_torchrun_max_restarts_finishes_a_killed_run_from_its_checkpoint(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    ck = tmp_path / "run.pt"
    args = [
        str(spec),
        *BASE,
        "--steps",
        "40",
        "--eval-every",
        "10",
        "--save",
        str(ck),
        "--save-every",
        "0",
    ]
    if _resume_auto_supported(
        spec, tmp_path
    ):  # one command line for the first start and every restart
        args += ["--resume", "auto"]
    else:  # --resume PATH needs the file: a first run, killed early, leaves it
        first = _start(args)
        try:
            assert _wait_for(ck, first, 1) >= 1, "no checkpoint from the first run"
        finally:
            _kill(first)
        args += ["--resume", str(ck)]
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc-per-node",
        "2",
        "--max-restarts",
        "1",
        "--monitor-interval",
        "0.2",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"127.0.0.1:{free_port()}",
        "--rdzv-id",
        "restart-test",
        "-m",
        "coatnet_nas.cli",
        "train",
    ]
    proc = _start(args, module=torchrun)
    try:
        start = max(_step(ck), 0)
        killed_at = _wait_for(ck, proc, start + 3)
        assert start + 3 <= killed_at < 40, f"the run was not caught mid-way (step {killed_at})"
        victim = _rank_pid(proc.pid, 1)
        assert victim is not None, "rank 1 not found among the agent's children"
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"torchrun did not finish within {TIMEOUT}s")
    finally:
        if proc.poll() is None:
            _kill(proc)
    assert proc.returncode == 0, err[-3000:]
    result = json.loads(out[out.index("{") :])
    assert result["status"] == "ok" and result["steps"] == 40 and result["world_size"] == 2
    assert result["resumed_from"] == str(ck)  # the restarted group continued the checkpoint
    assert [h["step"] for h in result["history"]] == [10, 20, 30, 40]
    final = torch.load(ck, weights_only=True)
    assert final["train"]["finished"] and final["train"]["step"] == 40
