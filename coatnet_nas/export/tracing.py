"""What every writer shares: the example batch, the dynamic batch dimension, a quiet trace."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

import torch

from coatnet_nas.errors import CoatnetError
from coatnet_nas.limits import bounded

__all__ = ["TRACE_BATCH", "batch_dim", "example_input", "export_failed", "quiet"]

# Traced at batch 2: torch.export specializes a dimension it sees as 1, so a batch-1 example
# would fix the batch; the files then accept any batch size.
TRACE_BATCH = 2


def example_input(channels: int, image_size: tuple[int, int], batch: int = TRACE_BATCH):
    """A seeded random NCHW batch (tracing records shapes and ops, never these values)."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, channels, *image_size, generator=generator)


def batch_dim() -> dict[int, torch.export.Dim]:
    """Dimension 0 of the image input is dynamic (one file serves every batch size)."""
    return {0: torch.export.Dim("batch")}


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The exporters log and warn about things that do not concern a CoAtNet (torchvision ops,
    tracer notes on constant shapes); the library never prints, so they are held back here."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export_failed(fmt: str, exc: BaseException) -> CoatnetError:
    """An exporter's failure as one paragraph naming the format (a model it cannot express)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return CoatnetError(
        bounded(f"format {fmt}: the model could not be exported ({reason[:400]})."),
        param="format",
    )
