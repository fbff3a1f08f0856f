"""Data-parallel training on PyTorch's own engine: process group, collectives, local launch.

A run is one process per device. ``torchrun`` (or :func:`launch_local`, which drives the same
elastic agent from Python) starts the processes and sets ``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`distributed_session` joins the group
(NCCL on CUDA, gloo on CPU) and leaves it on exit. With one process nothing here runs a
collective: :class:`World` of size 1 answers every reduction locally, so the single-process path
costs exactly what it did before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from coatnet_nas.data.devices import worker_device
from coatnet_nas.errors import CoatnetError

__all__ = [
    "WorkersFailed",
    "World",
    "distributed_session",
    "env_world_size",
    "free_port",
    "launch_local",
]


class WorkersFailed(CoatnetError):
    """Some ranks of a local launch exited with an error; ``exit_codes`` maps rank -> code."""

    def __init__(self, message: str, exit_codes: dict[int, int]):
        super().__init__(message, param="nproc")
        self.exit_codes = exit_codes


@dataclass(frozen=True)
class World:
    """This process's place in the run: ``rank`` of ``size`` (``local_rank`` on its machine)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 writes checkpoints and reports progress; the others stay quiet."""
        return self.rank == 0

    @classmethod
    def current(cls) -> World:
        """The initialized process group's world, or a single process when there is none."""
        if not (dist.is_available() and dist.is_initialized()):
            return cls()
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return cls(dist.get_rank(), dist.get_world_size(), local)

    def sum_window(
        self, loss: torch.Tensor, correct: torch.Tensor, images: int, steps: int
    ) -> tuple[float, int, int, int]:
        """All-reduced training sums (float64: loss sums stay exact enough to compare runs)."""
        packed = torch.stack(
            [
                loss.detach().double(),
                correct.double(),
                torch.tensor(float(images), dtype=torch.float64, device=loss.device),
                torch.tensor(float(steps), dtype=torch.float64, device=loss.device),
            ]
        )
        total = _all_reduce(packed).tolist()
        return total[0], round(total[1]), round(total[2]), round(total[3])

    def sum_ints(self, *values: int, device: torch.device) -> list[int]:
        """Integer counts summed over ranks (identity with one process)."""
        if self.size == 1:
            return list(values)
        packed = torch.tensor(values, dtype=torch.float64, device=device)
        return [round(v) for v in _all_reduce(packed).tolist()]

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when it is true on one (decisions that end a run must agree)."""
        if self.size == 1:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        return bool(_all_reduce(value, dist.ReduceOp.MAX).item() > 0)

    def mean_(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` replaced in place by its mean over ranks (identity with one process)."""
        if self.size == 1:
            return tensor
        return _all_reduce(tensor).div_(self.size)

    def each(self, value: float, device: torch.device) -> list[float]:
        """Every rank's ``value`` (float64), in rank order, on every rank: one all-reduce."""
        if self.size == 1:
            return [value]
        packed = torch.zeros(self.size, dtype=torch.float64, device=device)
        packed[self.rank] = value
        return _all_reduce(packed).tolist()

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's buffers (BatchNorm statistics) on every rank, so all ranks evaluate alike."""
        if self.size == 1:
            return
        for buffer in module.buffers():  # the buffer itself: the module keeps it alive
            dist.broadcast(buffer, src=0)


# Tensors handed to a collective, kept until the backend has let go of them (see _hold).
_HELD: list[torch.Tensor] = []


def _backend_holds(tensor: torch.Tensor) -> bool:
    """True while a reference other than Python's own is held (by a finished collective)."""
    return tensor._use_count() > 1


def _all_reduce(tensor: torch.Tensor, op: dist.ReduceOp | None = None) -> torch.Tensor:
    """``dist.all_reduce`` (a sum unless ``op``) of a temporary tensor, in place, held until the
    backend lets go (nothing of ``torch.distributed`` is touched at import)."""
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op is None else op)
    _hold(tensor)
    return tensor


def _hold(tensor: torch.Tensor) -> None:
    """Keep a collective's temporary tensor alive until the backend's thread has dropped it.

    Why: gloo's worker threads (and NCCL's watchdog) drop a finished collective's tensors on
    their own thread, sometimes after ``wait()`` has returned to Python (1 all_reduce in 7-9 on
    an idle 2-core machine). If Python has let go of the tensor first, that thread must take
    the GIL to free the tensor's Python object, and a thread taking the GIL while the
    interpreter exits is ended mid-destructor: ``std::terminate``, SIGABRT, a finished run
    reported failed. Held here, the last reference is Python's; :func:`_release_held` drains
    the list on exit.
    """
    _HELD[:] = [held for held in _HELD if _backend_holds(held)]
    _HELD.append(tensor)


def _release_held(timeout_s: float = 10.0) -> None:
    """Wait (bounded) until the backend has dropped every held tensor, then drop them here."""
    deadline = time.monotonic() + timeout_s
    while any(map(_backend_holds, _HELD)) and time.monotonic() < deadline:
        time.sleep(0.001)  # releases the GIL the backend's thread may be waiting for
    _HELD.clear()


def env_world_size() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 when unset)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        raise CoatnetError(
            f"WORLD_SIZE must be an integer, got {os.environ['WORLD_SIZE']!r}.", param="nproc"
        ) from None


@contextlib.contextmanager
def distributed_session(device: str, timeout_s: float = 600.0) -> Iterator[tuple[World, str]]:
    """Join the process group the environment describes; yield the world and this rank's device.

    Under torchrun (``WORLD_SIZE`` > 1) this initializes ``torch.distributed`` from the
    environment (``env://``: ``MASTER_ADDR``/``MASTER_PORT``), NCCL when the device is CUDA and
    gloo otherwise, pins rank ``LOCAL_RANK`` to ``cuda:LOCAL_RANK`` (modulo the visible
    devices), and destroys the group on exit, error or not. With one process it yields
    ``World()`` and ``device`` unchanged. A group the caller initialized is used as is.
    """
    if dist.is_available() and dist.is_initialized():
        world = World.current()
        try:
            yield world, worker_device(device, world.local_rank, torch.cuda.device_count())
        finally:
            _release_held()
        return
    size = env_world_size()
    if size == 1:
        yield World(), device
        return
    local = int(os.environ.get("LOCAL_RANK", "0"))
    placed = worker_device(device, local, torch.cuda.device_count())
    cuda = placed.startswith("cuda")
    if cuda:
        torch.cuda.set_device(torch.device(placed))
    timeout = timedelta(seconds=timeout_s)
    store = _attempt_store(timeout)
    dist.init_process_group(
        "nccl" if cuda else "gloo",
        timeout=timeout,
        device_id=torch.device(placed) if cuda else None,
        **(
            {"store": store, "rank": int(os.environ["RANK"]), "world_size": size}
            if store is not None
            else {"init_method": "env://"}
        ),
    )
    try:
        yield World.current(), placed
    finally:
        dist.destroy_process_group()
        _release_held()


def _attempt_store(timeout: timedelta) -> Any:
    """Under torchrun's agent store, a store of this restart attempt's own keys (else None).

    The agent's store outlives a restart (``torchrun --max-restarts``), and torch's ``env://``
    adds no per-attempt prefix: a restarted rank could read the address a killed rank of the
    previous attempt published and fail to connect (gloo: "connectFullMesh failed ... Connection
    refused", seen in 2 of 9 restarts here). Prefixing the keys with the attempt avoids that.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    client = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        is_master=False,
        timeout=timeout,
    )
    return dist.PrefixStore(f"coatnet/attempt_{attempt}", client)


def free_port() -> int:
    """A TCP port free right now on this machine (bind port 0 and let the OS choose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch_local(nproc: int, entry: Callable[..., Any], args: Sequence[Any]) -> dict[int, Any]:
    """Run ``entry(*args)`` in ``nproc`` processes on this machine with torch's elastic agent.

    The same agent torchrun uses (``torch.distributed.launcher.api.elastic_launch``, c10d
    rendezvous on a free local port, no restarts): it sets the ranks and the master address for
    the workers and stops them all when one fails. Returns each rank's return value. ``entry``
    must be importable by name (workers are spawned, not forked). A stop signal the agent
    catches (it passes it on to the workers) is raised as :class:`~coatnet_nas.signals.Terminated`.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from coatnet_nas.signals import Terminated, preserved

    if nproc < 1:
        raise CoatnetError(f"nproc must be >= 1, got {nproc}.", param="nproc")
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"coatnet-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint=f"127.0.0.1:{free_port()}",
        max_restarts=0,
        monitor_interval=0.1,
        start_method="spawn",
    )
    quiet = logging.getLogger("torch.distributed.elastic")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # the agent logs each start, and a failed rank's traceback
    # the agent installs its own SIGINT/SIGTERM/SIGHUP/SIGQUIT handlers and leaves them: a
    # caller's later Ctrl-C raised the agent's SignalException instead of KeyboardInterrupt
    try:
        with preserved():
            return elastic_launch(config, entry)(*args)
    except ChildFailedError as exc:
        codes = {rank: failure.exitcode for rank, failure in exc.failures.items()}
        listed = "; ".join(f"rank {rank}: exit {code}" for rank, code in sorted(codes.items()))
        raise WorkersFailed(f"a training process failed ({listed}).", codes) from None
    except SignalException as exc:  # the agent's own handler took SIGTERM; it stopped the ranks
        raise Terminated(int(exc.sigval)) from None
    finally:
        quiet.setLevel(level)
