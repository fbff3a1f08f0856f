"""Thread counts come from the cores a scheduler gave (affinity, cgroup quota), not all cores."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coatnet_nas.threads import cgroup_cpu_limit, threads_per_worker, usable_cpus

PACKAGE = Path(__file__).resolve().parents[1] / "coatnet_nas"


def _fake_root(tmp_path: Path, cgroup: str, files: dict[str, str]) -> Path:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text(cgroup)
    for rel, text in files.items():
        path = tmp_path / "sys/fs/cgroup" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_cgroup_v2_quota_of_the_process_and_its_ancestors(tmp_path):
    root = _fake_root(
        tmp_path,
        "0::/slurm/job_7/step_0\n",
        {
            "cpu.max": "max 100000\n",  # the root: no quota
            "slurm/cpu.max": "max 100000\n",
            "slurm/job_7/cpu.max": "300000 100000\n",  # the job: 3 CPUs
            "slurm/job_7/step_0/cpu.max": "max 100000\n",
        },
    )
    assert cgroup_cpu_limit(root=root) == pytest.approx(3.0)
    assert usable_cpus(root=root) == min(3, len(os.sched_getaffinity(0)))


def test_cgroup_v2_without_quota_and_a_fractional_quota(tmp_path):
    none = _fake_root(tmp_path / "a", "0::/user.slice\n", {"user.slice/cpu.max": "max 100000\n"})
    assert cgroup_cpu_limit(root=none) is None
    assert usable_cpus(root=none) == len(os.sched_getaffinity(0))
    half = _fake_root(tmp_path / "b", "0::/\n", {"cpu.max": "50000 100000\n"})  # 0.5 CPU
    assert cgroup_cpu_limit(root=half) == pytest.approx(0.5)
    assert usable_cpus(root=half) == 1  # never below one
    assert threads_per_worker(4, root=half) == 1


def test_cgroup_v1_quota_and_container_paths(tmp_path):
    # A container sees the host's cgroup path in /proc/self/cgroup but has its own cgroup
    # mounted at the controller's root: the quota there counts.
    root = _fake_root(
        tmp_path,
        "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n",
        {"cpu,cpuacct/cpu.cfs_quota_us": "200000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"},
    )
    assert cgroup_cpu_limit(root=root) == pytest.approx(2.0)
    unlimited = _fake_root(
        tmp_path / "u",
        "1:cpu:/\n",
        {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"},
    )
    assert cgroup_cpu_limit(root=unlimited) is None


def test_unreadable_or_garbled_cgroup_files_mean_no_quota(tmp_path):
    assert cgroup_cpu_limit(root=tmp_path) is None  # no /proc at all
    garbled = _fake_root(tmp_path / "g", "0::/x\n", {"x/cpu.max": "lots 0\n"})
    assert cgroup_cpu_limit(root=garbled) is None


def test_no_thread_count_comes_from_the_machine_core_count():
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{n}"
        for path in PACKAGE.rglob("*.py")
        if path.name != "threads.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bcpu_count\(|sched_getaffinity\(", line)
    ]
    assert offenders == []


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) not installed")
def test_taskset_one_core_gives_one_thread_per_worker_and_one_decoder():
    code = (
        "from coatnet_nas.threads import usable_cpus, threads_per_worker\n"
        "from coatnet_nas.data.prepare import default_workers\n"
        "print(usable_cpus(), threads_per_worker(2), threads_per_worker(1), default_workers())\n"
    )
    out = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert out.stdout.split() == ["1", "1", "1", "1"]
    if len(os.sched_getaffinity(0)) >= 2:  # and the same code sees both cores without taskset
        both = subprocess.run(
            ["taskset", "-c", "0,1", sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        cpus = usable_cpus()
        assert both.stdout.split()[0] == str(min(2, cpus))


def test_torch_default_threads_are_capped_at_the_usable_cores(monkeypatch):
    import torch

    import coatnet_nas.threads as threads

    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "usable_cpus", lambda **_: 1)  # as under a 1-CPU quota
    with threads.cpu_threads(None):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with threads.cpu_threads(3):  # an explicit count is kept as given
        assert torch.get_num_threads() == 3
