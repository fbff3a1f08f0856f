"""Timing a forward pass honestly: warm-up, repeats, robust statistics, the device synchronized.

Means are pulled up by the odd preemption on a shared machine; the median and its dispersion
(inter-quartile range, median absolute deviation) describe what a forward pass usually costs.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from coatnet_nas.errors import CoatnetError
from coatnet_nas.threads import cpu_threads

__all__ = ["Timing", "parse_device", "time_rounds"]


@dataclass(frozen=True)
class Timing:
    """Robust statistics of repeated runs, in seconds."""

    median_s: float
    iqr_s: float
    mad_s: float
    repeats: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Timing:
        ordered = sorted(samples)
        median = statistics.median(ordered)
        q1, _, q3 = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else (median,) * 3
        mad = statistics.median(abs(s - median) for s in ordered)
        return cls(median, q3 - q1, mad, len(ordered))


def parse_device(device: str | torch.device) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N``, refused with the allowed forms when not usable here."""
    from coatnet_nas.data.devices import check_device_name

    text = str(device).strip().lower()
    allowed = "allowed: cpu, cuda or cuda:N"
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit()):
        if not torch.cuda.is_available():
            raise CoatnetError(
                f"device {device!r}: CUDA is not available on this machine ({allowed}).",
                param="device",
            )
        index = int(text[5:]) if ":" in text else 0
        if index >= torch.cuda.device_count():
            raise CoatnetError(
                f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA "
                f"device(s) ({allowed}).",
                param="device",
            )
        return torch.device("cuda", index)
    check_device_name(str(device))  # refuses what is not a device name at all
    raise CoatnetError(f"device {device!r} cannot be timed here ({allowed}).", param="device")


def device_name(device: torch.device) -> str:
    """The processor or GPU model: a table is only valid where it was measured."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "cpu"


def time_rounds(
    runs: Sequence[Callable[[], object]],
    device: torch.device,
    *,
    threads: int | None,
    rounds: int,
    per_round: int = 2,
    warmup: int = 3,
    untimed: int = 1,
    on_round: Callable[[int, list[list[float]]], None] | None = None,
) -> list[list[float]]:
    """Time every run in ``rounds`` round-robin rounds; the samples (seconds) of each run.

    Each round gives every run ``untimed`` untimed calls (caches refilled after the others ran),
    then ``per_round`` timed ones, and then calls
    ``on_round(index, that round's samples)`` (to save progress). On a shared machine the speed
    drifts by tens of percent over seconds; timing everything in the same rounds lets every run
    see the same drift, so their ratios stay honest even when the absolute speed does not.
    """
    if rounds < 0 or per_round < 1 or warmup < 0 or untimed < 0:
        raise CoatnetError(
            f"rounds must be >= 0, per_round >= 1 and warmup >= 0, got {rounds}, {per_round} "
            f"and {warmup}.",
            param="repeats",
        )
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    samples: list[list[float]] = [[] for _ in runs]
    enabled = gc.isenabled()
    gc.disable()
    try:
        with cpu_threads(threads), torch.inference_mode():
            for run in runs:
                for _ in range(warmup):
                    run()
            for index in range(rounds):
                this_round = []
                for run in runs:
                    for _ in range(untimed):
                        run()
                    sync()
                    own = []
                    for _ in range(per_round):
                        begin = time.perf_counter()
                        run()
                        sync()
                        own.append(time.perf_counter() - begin)
                    this_round.append(own)
                for mine, own in zip(samples, this_round, strict=True):
                    mine.extend(own)
                if on_round is not None:
                    on_round(index, this_round)
    finally:
        if enabled:
            gc.enable()
    return samples
