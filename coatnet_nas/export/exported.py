"""A ``torch.export`` program saved as .pt2: ATen ops only, loads with ``torch.export.load``."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from coatnet_nas._io import write_buffered
from coatnet_nas.export.tracing import batch_dim, export_failed, quiet

__all__ = ["write_exported"]


def write_exported(model: nn.Module, example: torch.Tensor, path: str | Path) -> None:
    """Export ``model`` (eval mode) with a dynamic batch dimension and save the program."""
    with quiet():
        try:
            program = torch.export.export(model, (example,), dynamic_shapes=(batch_dim(),))
        except Exception as exc:
            raise export_failed("exported", exc) from None
        # Into memory first: a C++ writer on a full disk may abort rather than raise.
        write_buffered(path, lambda f: torch.export.save(program, f))
