"""Stop signals as a first Ctrl-C: one mechanism for every long-running command.

A cluster stops a job with SIGTERM (SLURM preemption and time limits, Kubernetes eviction,
``timeout``, systemd) and warns ahead of a time limit with SIGUSR1 (SLURM's ``--signal``).
Python turns only SIGINT into ``KeyboardInterrupt``; the default SIGTERM kills the process
between two bytecodes, so a trial stayed RUNNING and a training lost its steps.

Two ways to listen, both main-thread only (elsewhere they do nothing: Python delivers signals
there alone):

- :func:`terminate_as_interrupt` raises :class:`Terminated` (a ``KeyboardInterrupt``) where the
  signal lands, so every path written for Ctrl-C (end the trial as ``interrupted`` and re-queue
  it, stop the worker processes, keep what is stored) runs for SIGTERM too; only the exit status
  differs (``128 + signal``, 143 for SIGTERM).
- :func:`deferred` only records the request; a loop that can stop cleanly polls
  :func:`pending` between units of work (the training loop does, between steps: it writes a
  resumable checkpoint first) and :func:`checkpoint_requested` for SIGUSR1.

The library never prints: the command line says the one line about it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = [
    "CHECKPOINT_SIGNALS",
    "STOP_SIGNALS",
    "Terminated",
    "check",
    "checkpoint_requested",
    "deferred",
    "exit_at_once",
    "interrupt_for",
    "listening",
    "pending",
    "raised",
    "signal_name",
    "stop_name",
    "terminate_as_interrupt",
]

STOP_SIGNALS: tuple[int, ...] = (signal.SIGTERM,)
# SLURM's --signal=USR1@SECONDS: save now, the time limit is near (Windows has no SIGUSR1).
CHECKPOINT_SIGNALS: tuple[int, ...] = tuple(
    s for s in (getattr(signal, "SIGUSR1", None),) if s is not None
)


class Terminated(KeyboardInterrupt):
    """A stop signal (SIGTERM) delivered as a first Ctrl-C; ``exit_code`` is ``128 + signum``."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signal_name(signum))
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def stop_name(exc: BaseException) -> str:
    """The signal a stop exception stands for, as recorded in a command's state: ``SIGTERM``
    for :class:`Terminated`, ``SIGINT`` for a plain ``KeyboardInterrupt`` (Ctrl-C)."""
    return signal_name(getattr(exc, "signum", signal.SIGINT))


def _ignore(_signum: int, _frame: Any) -> None:
    """Ignore a signal in Python (see ``terminate_as_interrupt(once=True)``)."""


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _handlers(handler: Any, signums: tuple[int, ...]) -> Iterator[None]:
    """``handler`` for ``signums`` during the block; the previous handlers restored after."""
    if not _main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@contextlib.contextmanager
def preserved(
    names: tuple[str, ...] = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"),
) -> Iterator[None]:
    """The handlers of the signals ``names`` (those this platform has) as they were before the
    block, whatever code inside installs (torch's elastic agent leaves its own behind)."""
    if not _main_thread():
        yield
        return
    saved = {
        s: signal.getsignal(s) for s in (getattr(signal, n) for n in names if hasattr(signal, n))
    }
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def terminate_as_interrupt(signums: tuple[int, ...] = STOP_SIGNALS, *, once: bool = False):
    """Raise :class:`Terminated` on ``signums`` during the block (a context manager).

    ``once``: the first signal raises and the later ones of ``signums`` are ignored (a process
    whose parent also forwards the stop must not abort its own bookkeeping); otherwise a second
    signal raises again, like a second Ctrl-C.
    """

    def handler(signum: int, _frame: Any) -> None:
        if once:  # a Python no-op, not SIG_IGN: one already caught would print a warning
            for s in signums:
                signal.signal(s, _ignore)
        _REQUESTS.raised = signum  # for check(), should this raise be swallowed
        raise interrupt_for(signum)

    return _raising(_handlers(handler, signums))


@contextlib.contextmanager
def _raising(handlers: Any) -> Iterator[None]:
    """The handlers, and a quiet ``sys.unraisablehook`` for a stop they raised in a finalizer
    (Python would print it as "Exception ignored in ..." and drop it; :func:`check` raises it
    again where it can be received)."""
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and _REQUESTS.raised is not None:
            return
        previous(unraisable)

    sys.unraisablehook = hook
    try:
        with handlers:
            yield
    finally:
        sys.unraisablehook = previous
        _REQUESTS.raised = None


def raised() -> int | None:
    """The stop signal :func:`terminate_as_interrupt` raised in this block (None: none)."""
    return _REQUESTS.raised


def check() -> None:
    """Raise the stop that :func:`terminate_as_interrupt` raised but nobody received.

    An exception raised by a signal handler while Python runs a finalizer or a weakref callback
    (SQLAlchemy's registries have them) is printed as "Exception ignored" and dropped: the
    process went on as if no signal had come. Loops call this between units of work.
    """
    if _REQUESTS.raised is not None and _main_thread():
        raise interrupt_for(_REQUESTS.raised)


def exit_at_once(code_of: dict[int, int] | None = None):
    """During the block a stop signal ends the process at once (``os._exit``), as a second
    Ctrl-C does while a first one's bookkeeping runs: SIGINT 130, SIGTERM 143."""
    codes = code_of or {signal.SIGINT: 130, signal.SIGTERM: 143}

    def handler(signum: int, _frame: Any) -> None:
        os._exit(codes.get(signum, 128 + signum))

    # An ignored signal stays ignored (a local worker ignores SIGINT: its parent decides).
    live = tuple(
        s
        for s in codes
        if not _main_thread() or signal.getsignal(s) not in (signal.SIG_IGN, _ignore)
    )
    return _handlers(handler, live)


class _Requests:
    """What :func:`deferred` handlers recorded (process-wide: signals are, too)."""

    def __init__(self) -> None:
        self.stop: int | None = None
        self.checkpoint = False
        self.listening = 0
        self.raised: int | None = None


_REQUESTS = _Requests()


@contextlib.contextmanager
def deferred(
    stop: tuple[int, ...] = (signal.SIGINT, *STOP_SIGNALS),
    checkpoint: tuple[int, ...] = CHECKPOINT_SIGNALS,
) -> Iterator[None]:
    """Record ``stop`` and ``checkpoint`` signals for :func:`pending` to report.

    A second stop signal (the first is being acted on) raises :class:`Terminated` (or
    ``KeyboardInterrupt`` for SIGINT) at once, the way a second Ctrl-C does.
    """

    def on_stop(signum: int, _frame: Any) -> None:
        if _REQUESTS.stop is not None:
            raise KeyboardInterrupt if signum == signal.SIGINT else Terminated(signum)
        _REQUESTS.stop = signum

    def on_checkpoint(_signum: int, _frame: Any) -> None:
        _REQUESTS.checkpoint = True

    if not _main_thread():
        yield
        return
    _REQUESTS.stop, _REQUESTS.checkpoint = None, False
    _REQUESTS.listening += 1
    try:
        with _handlers(on_stop, stop), _handlers(on_checkpoint, checkpoint):
            yield
    finally:
        _REQUESTS.listening -= 1
        _REQUESTS.stop, _REQUESTS.checkpoint = None, False


def listening() -> bool:
    """Whether a :func:`deferred` block is active (a loop may skip its polling otherwise)."""
    return _REQUESTS.listening > 0


def pending() -> int | None:
    """The stop signal recorded by :func:`deferred` (None: none, or nobody listens)."""
    return _REQUESTS.stop if _REQUESTS.listening else None


def checkpoint_requested() -> bool:
    """Whether a checkpoint signal arrived since the last call (the request is consumed)."""
    if not _REQUESTS.listening or not _REQUESTS.checkpoint:
        return False
    _REQUESTS.checkpoint = False
    return True


def interrupt_for(signum: int) -> KeyboardInterrupt:
    """The exception a recorded stop raises once the loop has stopped cleanly."""
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)
