"""TorchScript by tracing: loads with ``torch.jit.load`` alone (no Python class needed)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from coatnet_nas._io import write_buffered
from coatnet_nas.export.tracing import export_failed, quiet

__all__ = ["write_torchscript"]


def write_torchscript(model: nn.Module, example: torch.Tensor, path: str | Path) -> None:
    """Trace ``model`` (eval mode) and save it.

    Tracing rather than scripting: the graph of a built CoAtNet is fixed by its spec (the
    Python branches are on sizes and options), and the traced sizes are read from the input,
    so the file accepts any batch size.
    """
    with quiet(), torch.no_grad():
        try:
            traced = torch.jit.trace(model, (example,), check_trace=False)
        except Exception as exc:
            raise export_failed("torchscript", exc) from None
        # Into memory first: torch's C++ writer aborts the process on a full disk.
        write_buffered(path, lambda f: torch.jit.save(traced, f))
