"""ONNX through torch.onnx's dynamo exporter (torch.export + onnxscript), dynamic batch."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from coatnet_nas.export.deps import require
from coatnet_nas.export.tracing import batch_dim, export_failed, quiet

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "write_onnx"]

INPUT_NAME, OUTPUT_NAME = "images", "logits"


def write_onnx(
    model: nn.Module, example: torch.Tensor, path: str | Path, *, opset: int | None = None
) -> int:
    """Write ``model`` (eval mode) as one self-contained ONNX file; return its opset.

    The weights are stored inside the file (no external ``.data`` beside it), so the file alone
    is the deployment artifact; protobuf caps such a file at 2 GB, far above CoAtNet-4.
    """
    require("onnx", why="ONNX export")
    require("onnxscript", why="ONNX export")
    with quiet():
        try:
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                dynamic_shapes=(batch_dim(),),
                optimize=True,
                verbose=False,
            )
        except Exception as exc:  # an op the exporter cannot express: say which format
            raise export_failed("onnx", exc) from None
        if program is None:  # only the legacy exporter returns nothing
            raise export_failed("onnx", RuntimeError("torch.onnx.export returned no program"))
        program.save(path, external_data=False)
    return int(program.model.opset_imports.get("", opset or 0))
