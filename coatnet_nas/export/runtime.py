"""Latency as a deployment runtime measures it: onnxruntime or torch, fixed threads and batch.

``coatnet build`` can report this number beside PyTorch's eager latency, so a user sees what the
exported model costs where it will run.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from coatnet_nas.errors import CoatnetError
from coatnet_nas.export.check import Runner, load_runner, random_images
from coatnet_nas.export.formats import DeployRuntime, ExportFormat, parse_format, parse_runtime
from coatnet_nas.latency.timing import time_rounds

__all__ = ["LatencyStats", "RuntimeName", "alternating_latency", "runtime_latency"]

RuntimeName = Literal["onnxruntime", "torch"] | DeployRuntime


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds per forward pass: median and interquartile range of ``repeats`` timings."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    repeats: int
    runtime: str
    what: str  # what ran: "eager", "onnx", "torchscript", "exported" (or a caller's name)
    batch: int
    threads: int

    @property
    def iqr_ms(self) -> float:
        return self.q3_ms - self.q1_ms

    def to_dict(self) -> dict:
        return {**asdict(self), "iqr_ms": self.iqr_ms}


def runtime_latency(
    path_or_model: str | Path | nn.Module,
    image_size: int | Sequence[int],
    batch: int = 1,
    threads: int = 1,
    runtime: RuntimeName | None = None,
    repeats: int = 30,
    warmup: int = 5,
    *,
    format: ExportFormat | str | None = None,
    channels: int | None = None,
) -> LatencyStats:
    """Time ``repeats`` forward passes (after ``warmup``) of a file or a model on random input.

    A path runs in its format's runtime (``format`` or, if omitted, its suffix: .onnx
    onnxruntime; .pt/.ts TorchScript and .pt2 torch.export, both torch). A model runs eagerly
    under ``runtime="torch"`` (the default for a model); ``runtime="onnxruntime"`` exports it to
    a temporary ONNX file first (checked against the model) and times that. ``channels``
    defaults to the model's spec (``in_chans``), else 3.
    """
    size = _size(image_size)
    for name, value, low in (
        ("batch", batch, 1),
        ("threads", threads, 1),
        ("repeats", repeats, 1),
        ("warmup", warmup, 0),
    ):
        if not isinstance(value, int) or value < low:
            raise CoatnetError(f"{name} must be an integer >= {low}, got {value!r}.", param=name)
    if runtime is not None:
        runtime = parse_runtime(runtime).value  # type: ignore[assignment]
    if isinstance(path_or_model, nn.Module):
        spec = getattr(path_or_model, "spec", None)
        channels = channels or getattr(spec, "in_chans", 3)
        if runtime == "onnxruntime":
            return _onnx_of_model(path_or_model, size, batch, threads, repeats, warmup, channels)
        model = path_or_model
        was_training = model.training
        model.eval()

        def run(images: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return model(images)

        try:
            return _time(run, "torch", "eager", size, batch, threads, repeats, warmup, channels)
        finally:
            model.train(was_training)
    fmt = _format_of(path_or_model, format)
    if runtime is not None and runtime != fmt.runtime:
        raise CoatnetError(
            f"runtime: a {fmt.value} file runs in {fmt.runtime}, not {runtime}.", param="runtime"
        )
    path = Path(path_or_model)
    if not path.is_file():
        raise CoatnetError(f"{path}: no such exported model file.", param="path")
    run = load_runner(path, fmt, threads=threads)
    return _time(run, fmt.runtime, fmt.value, size, batch, threads, repeats, warmup, channels or 3)


def _onnx_of_model(model, size, batch, threads, repeats, warmup, channels) -> LatencyStats:
    from coatnet_nas.export.api import export_model

    with tempfile.TemporaryDirectory(prefix="coatnet-latency-") as folder:
        path = Path(folder) / "model.onnx"
        export_model(model, ExportFormat.ONNX, path, image_size=size, batch=batch)
        run = load_runner(path, ExportFormat.ONNX, threads=threads)
        return _time(run, "onnxruntime", "onnx", size, batch, threads, repeats, warmup, channels)


def _time(
    run: Runner,
    runtime: str,
    what: str,
    size: tuple[int, int],
    batch: int,
    threads: int,
    repeats: int,
    warmup: int,
    channels: int,
) -> LatencyStats:
    images = random_images(batch, channels, size)
    return alternating_latency({what: (runtime, run)}, images, threads, repeats, warmup)[what]


def alternating_latency(
    runners: Mapping[str, tuple[str, Runner]],
    images: torch.Tensor,
    threads: int = 1,
    repeats: int = 30,
    warmup: int = 5,
) -> dict[str, LatencyStats]:
    """Time several runners (name -> (runtime, runner)) on the same images, one call of each
    in turn, so a load change on a shared machine hits all of them alike."""
    calls = [lambda run=run: run(images) for _, run in runners.values()]
    # onnxruntime has its own thread setting; torch runtimes read the one time_rounds sets
    samples = time_rounds(
        calls,
        torch.device("cpu"),
        threads=threads,
        rounds=repeats,
        per_round=1,
        warmup=warmup,
        untimed=0,
    )
    timings = {name: [1e3 * t for t in own] for name, own in zip(runners, samples, strict=True)}
    stats = {}
    for name, (runtime, _) in runners.items():
        values = timings[name]
        if len(values) == 1:
            q1 = median = q3 = values[0]
        else:
            q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
        stats[name] = LatencyStats(median, q1, q3, repeats, runtime, name, images.shape[0], threads)
    return stats


def _size(image_size: int | Sequence[int]) -> tuple[int, int]:
    values = [image_size] if isinstance(image_size, int) else list(image_size)
    if len(values) not in (1, 2) or not all(isinstance(v, int) and v > 0 for v in values):
        raise CoatnetError(
            f"image_size must be a positive integer or (H, W), got {image_size!r}.",
            param="image_size",
        )
    return (values[0], values[-1])


def _format_of(path: str | Path, fmt: ExportFormat | str | None) -> ExportFormat:
    if fmt is not None:
        return parse_format(fmt)
    guessed = ExportFormat.from_path(path)
    if guessed is None:
        raise CoatnetError(
            f"format: cannot tell the format of {Path(path).name!r} from its suffix "
            "(.onnx, .pt/.ts, .pt2); give format.",
            param="format",
        )
    return guessed
