"""``export_model``: a spec (or model) and its weights in, one checked deployment file out.

The file is written under a temporary name beside ``out``, checked there in its own runtime,
and only then renamed into place: a failed export or check never leaves a file at ``out``
that looks valid (an existing file there is left as it was).
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from torch import nn

from coatnet_nas._io import atomic_write, check_output_file
from coatnet_nas.builder import build_model
from coatnet_nas.errors import CoatnetError
from coatnet_nas.export.check import CheckResult, check_export
from coatnet_nas.export.deps import require
from coatnet_nas.export.formats import ExportFormat, parse_format
from coatnet_nas.export.tracing import TRACE_BATCH, example_input
from coatnet_nas.presets import resolve_spec
from coatnet_nas.spec import ModelSpec, validation_reason
from coatnet_nas.train.checkpoint import read_payload
from coatnet_nas.train.weights import load_weights

__all__ = ["ExportReport", "export_model"]


@dataclass(frozen=True)
class ExportReport:
    """What was written and how well it agrees with PyTorch (``None``: not checked)."""

    path: Path
    format: ExportFormat
    bytes: int
    max_abs_diff: float | None
    max_rel_diff: float | None
    seconds: float  # export and check together
    image_size: tuple[int, int]
    batch: int  # the batch the check ran first; the file accepts any batch (dynamic_batch)
    dynamic_batch: bool
    check_batches: tuple[int, ...]
    atol: float
    opset: int | None
    weights: str | None
    resized_tables: tuple[str, ...]

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "format": self.format.value,
            "runtime": self.format.runtime,
            "bytes": self.bytes,
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": self.max_rel_diff,
            "checked": self.max_abs_diff is not None,
            "atol": self.atol,
            "seconds": round(self.seconds, 3),
            "image_size": list(self.image_size),
            "batch": self.batch,
            "dynamic_batch": self.dynamic_batch,
            "check_batches": list(self.check_batches),
            "opset": self.opset,
            "weights": self.weights,
            "resized_tables": list(self.resized_tables),
        }


def export_model(
    spec_or_model: ModelSpec | str | Path | nn.Module,
    format: ExportFormat | str,
    out: str | Path,
    *,
    weights: str | Path | None = None,
    image_size: int | Sequence[int] | None = None,
    batch: int = 1,
    opset: int | None = None,
    check: bool = True,
    atol: float = 1e-4,
    seed: int = 0,
) -> ExportReport:
    """Export a spec (object, YAML path or preset name) or a built model to ``out``.

    ``weights`` is a training checkpoint, loaded as training loads ``init`` (with
    ``weights_only=True``; relative-position tables resized to ``image_size``). The check runs
    the written file on seeded random batches of ``batch`` and ``batch + 1`` images (the second
    proves the batch dimension is dynamic) and raises :class:`CoatnetError` when the largest
    absolute difference from the eager model exceeds ``atol``. A given model is never changed:
    weights load into a copy of it.
    """
    fmt = parse_format(format)
    _check_numbers(batch, atol, opset)
    if fmt is ExportFormat.ONNX:
        require("onnx", why="ONNX export")
        require("onnxscript", why="ONNX export")
        if check:
            require("onnxruntime", why="checking an ONNX file")
    weights_path = Path(weights) if weights is not None else None
    if weights_path is not None and not weights_path.is_file():
        what = "is a directory, not a checkpoint" if weights_path.is_dir() else "no such checkpoint"
        raise CoatnetError(f"weights {weights_path}: {what}.", param="weights")
    out = check_output_file(out, param="out")
    start = time.perf_counter()
    model, size, channels = _model(spec_or_model, image_size, weights_path is not None)
    resized: list[str] = []
    if weights_path is not None:
        state = read_payload(weights_path, param="weights")["state_dict"]
        resized = load_weights(model, state, param="weights")
    was_training = model.training
    model.eval()
    batches = (batch, batch + 1)
    outcome: dict[str, object] = {}

    def write_and_check(tmp: Path) -> None:
        # Staged under the format's suffix (torch.export.load wants .pt2), then moved onto the
        # temporary name that atomic_write renames into place once everything passed.
        staged = tmp.with_name(tmp.name + fmt.suffix)
        try:
            _write_checked(staged)
            os.replace(staged, tmp)
        finally:
            staged.unlink(missing_ok=True)

    def _write_checked(tmp: Path) -> None:
        example = example_input(channels, size, TRACE_BATCH)
        if fmt is ExportFormat.ONNX:
            from coatnet_nas.export.onnx import write_onnx

            outcome["opset"] = write_onnx(model, example, tmp, opset=opset)
        elif fmt is ExportFormat.TORCHSCRIPT:
            from coatnet_nas.export.torchscript import write_torchscript

            write_torchscript(model, example, tmp)
        else:
            from coatnet_nas.export.exported import write_exported

            write_exported(model, example, tmp)
        if check:
            outcome["check"] = check_export(
                tmp,
                fmt,
                model,
                image_size=size,
                channels=channels,
                batches=batches,
                atol=atol,
                seed=seed,
            )
        outcome["bytes"] = tmp.stat().st_size

    try:
        atomic_write(out, write_and_check, param="out")
    finally:
        model.train(was_training)
    result = outcome.get("check")
    assert result is None or isinstance(result, CheckResult)
    return ExportReport(
        path=out,
        format=fmt,
        bytes=int(outcome["bytes"]),  # type: ignore[call-overload]
        max_abs_diff=result.max_abs_diff if result else None,
        max_rel_diff=result.max_rel_diff if result else None,
        seconds=time.perf_counter() - start,
        image_size=size,
        batch=batch,
        dynamic_batch=True,
        check_batches=batches if result else (),
        atol=atol,
        opset=outcome.get("opset"),  # type: ignore[arg-type]
        weights=str(weights_path) if weights_path is not None else None,
        resized_tables=tuple(resized),
    )


def _check_numbers(batch: int, atol: float, opset: int | None) -> None:
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise CoatnetError(f"batch must be an integer >= 1, got {batch!r}.", param="batch")
    if not isinstance(atol, (int, float)) or not atol > 0 or atol == float("inf"):
        raise CoatnetError(f"atol must be a positive finite number, got {atol!r}.", param="atol")
    if opset is not None and (not isinstance(opset, int) or not 18 <= opset <= 23):
        # torch.onnx's exporter writes opset 18 and later; older ones need a conversion that
        # does not cover every op here.
        raise CoatnetError(f"opset must be between 18 and 23, got {opset!r}.", param="opset")


def _model(
    source: ModelSpec | str | Path | nn.Module,
    image_size: int | Sequence[int] | None,
    copy_model: bool,
) -> tuple[nn.Module, tuple[int, int], int]:
    """The model to export, its input size and channels."""
    if isinstance(source, nn.Module):
        spec = getattr(source, "spec", None)
        built = tuple(spec.image_size) if isinstance(spec, ModelSpec) else None
        size = _pair(image_size) if image_size is not None else built
        if size is None:
            raise CoatnetError(
                "image_size is needed for a model without a spec.", param="image_size"
            )
        if built is not None and size != built:
            raise CoatnetError(
                f"image_size {size[0]}x{size[1]}: this model was built for "
                f"{built[0]}x{built[1]} (its relative-position tables are per size); build it "
                "at the new size and load the weights there.",
                param="image_size",
            )
        channels = spec.in_chans if isinstance(spec, ModelSpec) else 3
        return (copy.deepcopy(source) if copy_model else source), size, channels
    spec = source if isinstance(source, ModelSpec) else resolve_spec(source)
    if image_size is not None:
        try:
            spec = spec.with_image_size(image_size)
        except ValidationError as exc:  # the size breaks the spec (a stage cannot halve it)
            raise CoatnetError(
                f"image_size {image_size}: {validation_reason(exc)}.", param="image_size"
            ) from None
    model = build_model(spec)
    return model, tuple(spec.image_size), spec.in_chans  # type: ignore[return-value]


def _pair(image_size: int | Sequence[int]) -> tuple[int, int]:
    values = [image_size] if isinstance(image_size, int) else list(image_size)
    return (int(values[0]), int(values[-1]))
