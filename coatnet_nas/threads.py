"""How many cores this process may use, and capping torch's intra-op threads for a block of work.

``os.cpu_count()`` counts the machine's cores, not the ones a scheduler gave: under SLURM
``--cpus-per-task 4`` on a 128-core node it says 128, and two workers each starting 64 threads
on 4 cores wait on each other. :func:`usable_cpus` reads what the kernel will actually run us
on: the CPU affinity mask (``taskset``, SLURM's task binding, a cpuset), capped by a CFS quota
(cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``: Docker ``--cpus``,
Kubernetes CPU limits) on this process's cgroup or any of its ancestors. Every thread count in
the package comes from here.

Oversubscribed OpenMP threads wait on each other; batch-1 traces and several processes sharing
a few cores run faster with fewer threads.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path

import torch

__all__ = ["cgroup_cpu_limit", "cpu_threads", "threads_per_worker", "usable_cpus"]


def usable_cpus(*, root: str | Path = "/") -> int:
    """The cores this process may run on: the affinity mask, capped by a cgroup CPU quota.

    A fractional quota rounds down (1.5 CPUs: 1 thread), never below 1. ``root`` is where
    ``/proc`` and ``/sys/fs/cgroup`` are found (tests point it at a folder of fake files).
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_limit(root=root)
    if quota is not None:
        cpus = min(cpus, math.floor(quota))
    return max(1, cpus)


def threads_per_worker(workers: int, *, root: str | Path = "/") -> int:
    """Threads for each of ``workers`` processes sharing this process's cores (at least 1)."""
    return max(1, usable_cpus(root=root) // max(1, workers))


def cgroup_cpu_limit(*, root: str | Path = "/") -> float | None:
    """CPU quota (in cores) of this process's cgroup, the tightest up its tree; None: none."""
    root = Path(root)
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    limits: list[float] = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, cgroup = rest.partition(":")
        if hierarchy == "0" and controllers == "":  # cgroup v2 (unified)
            limits += _walk(root / "sys/fs/cgroup", cgroup, _v2_limit)
        elif "cpu" in controllers.split(","):  # cgroup v1 cpu controller
            for mount in _v1_mounts(root / "sys/fs/cgroup", controllers):
                limits += _walk(mount, cgroup, _v1_limit)
    return min(limits) if limits else None


def _v1_mounts(base: Path, controllers: str) -> list[Path]:
    names = [controllers, "cpu", "cpu,cpuacct", "cpuacct,cpu"]
    seen: list[Path] = []
    for name in names:
        path = base / name
        if path.is_dir() and path.resolve() not in [p.resolve() for p in seen]:
            seen.append(path)
    return seen


def _walk(mount: Path, cgroup: str, read) -> list[float]:
    """Limits from ``mount/cgroup`` up to ``mount`` (a container sees the host's path: if that
    folder is not there, the mount itself is this process's cgroup)."""
    parts = [p for p in cgroup.strip().split("/") if p and p != ".."]
    here = mount.joinpath(*parts)
    if not here.is_dir():
        here, parts = mount, []
    limits = []
    for depth in range(len(parts), -1, -1):
        value = read(mount.joinpath(*parts[:depth]))
        if value is not None:
            limits.append(value)
    return limits


def _v2_limit(folder: Path) -> float | None:
    try:
        quota, _, period = (folder / "cpu.max").read_text().strip().partition(" ")
        if quota == "max":
            return None
        return int(quota) / int(period or 100000)
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _v1_limit(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:  # -1: no quota
        return None
    return quota / period


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch threads (``None``: torch's setting, capped at
    :func:`usable_cpus`: torch's default follows the affinity mask but not a cgroup quota)."""
    if threads is None:
        cap = usable_cpus()
        if torch.get_num_threads() <= cap:
            yield
            return
        threads = cap
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
