"""Run a written file in its own runtime and compare it with the eager model.

The file is loaded the way a deployment loads it (onnxruntime's ``InferenceSession``,
``torch.jit.load``, ``torch.export.load``), never through coatnet-nas, so a check that passes
says the file works on its own, not that our model does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from coatnet_nas.errors import CoatnetError
from coatnet_nas.export.deps import require
from coatnet_nas.export.formats import ExportFormat, parse_format
from coatnet_nas.export.tracing import quiet

__all__ = ["CheckResult", "Runner", "check_export", "load_runner", "random_images"]

Runner = Callable[[torch.Tensor], torch.Tensor]


def load_runner(path: str | Path, fmt: ExportFormat | str, *, threads: int | None = None) -> Runner:
    """A function images -> logits backed by the file's own runtime.

    ``threads`` sets onnxruntime's intra-op threads (one inter-op thread, sequential); the torch
    runtimes follow the process's torch setting (:func:`coatnet_nas.threads.cpu_threads`).
    """
    fmt = parse_format(fmt)
    path = Path(path)
    if fmt is ExportFormat.ONNX:
        ort = require("onnxruntime", why="running an ONNX file")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: the library never prints
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def run_onnx(images: torch.Tensor) -> torch.Tensor:
            out = session.run(None, {name: images.detach().cpu().numpy()})[0]
            return torch.from_numpy(out)

        return run_onnx
    with quiet():
        if fmt is ExportFormat.TORCHSCRIPT:
            module = torch.jit.load(str(path), map_location="cpu")
            module.eval()
        else:
            module = torch.export.load(str(path)).module()

    def run_torch(images: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return module(images)

    return run_torch


def random_images(
    batch: int, channels: int, image_size: Sequence[int], *, seed: int = 0
) -> torch.Tensor:
    """A seeded standard-normal NCHW batch: the scale of normalized images."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, *image_size, generator=generator)


@dataclass(frozen=True)
class CheckResult:
    """How far the file's outputs are from the eager model's on seeded random batches.

    ``max_rel_diff`` is relative to the output's scale (``max|a - b| / max|b|``), which stays
    meaningful where single logits are near zero.
    """

    max_abs_diff: float
    max_rel_diff: float
    batches: tuple[int, ...]
    atol: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.atol

    def to_dict(self) -> dict:
        return {**asdict(self), "batches": list(self.batches), "ok": self.ok}


def check_export(
    path: str | Path,
    fmt: ExportFormat | str,
    model: nn.Module,
    *,
    image_size: Sequence[int],
    channels: int = 3,
    batches: Sequence[int] = (1,),
    atol: float = 1e-4,
    seed: int = 0,
) -> CheckResult:
    """Compare the file with ``model`` in eval mode; raise :class:`CoatnetError` over ``atol``.

    Several ``batches`` prove a dynamic batch dimension really is dynamic.
    """
    fmt = parse_format(fmt)
    run = load_runner(path, fmt)
    was_training = model.training
    model.eval()
    worst_abs = worst_rel = 0.0
    try:
        for i, batch in enumerate(batches):
            images = random_images(batch, channels, image_size, seed=seed + i)
            with torch.inference_mode():
                expected = model(images).float()
            got = run(images).float()
            if got.shape != expected.shape:
                raise CoatnetError(
                    f"format {fmt.value}: the file returned shape {tuple(got.shape)} for a batch "
                    f"of {batch}, PyTorch {tuple(expected.shape)}.",
                    param="format",
                )
            diff = (got - expected).abs().max().item()
            if diff != diff:  # NaN: never within tolerance
                diff = float("inf")
            scale = max(expected.abs().max().item(), 1e-12)
            worst_abs, worst_rel = max(worst_abs, diff), max(worst_rel, diff / scale)
    finally:
        model.train(was_training)
    result = CheckResult(worst_abs, worst_rel, tuple(batches), atol)
    if not result.ok:
        raise CoatnetError(
            f"atol: the {fmt.value} export differs from PyTorch by up to {worst_abs:.3g} "
            f"(max abs diff; {worst_rel:.3g} of the output's scale) on seeded random batches of "
            f"{', '.join(map(str, batches))}, over the tolerance {atol:g}; nothing was written. "
            "Raise the tolerance only if this difference is acceptable for deployment.",
            param="atol",
        )
    return result
