"""The export formats, their usual file suffixes and the runtime each one runs in."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from coatnet_nas.errors import CoatnetError

__all__ = ["DeployRuntime", "ExportFormat", "parse_format", "parse_runtime"]


class ExportFormat(str, Enum):
    """``onnx`` (onnxruntime), ``torchscript`` (``torch.jit.load``), ``exported`` (.pt2)."""

    ONNX = "onnx"
    TORCHSCRIPT = "torchscript"
    EXPORTED = "exported"

    @property
    def suffix(self) -> str:
        return _SUFFIXES[self][0]

    @property
    def runtime(self) -> str:
        """The runtime that loads the file without coatnet-nas: ``onnxruntime`` or ``torch``."""
        return "onnxruntime" if self is ExportFormat.ONNX else "torch"

    @classmethod
    def from_path(cls, path: str | Path) -> ExportFormat | None:
        """The format a file name's suffix suggests, or ``None`` for an unknown suffix."""
        suffix = Path(path).suffix.lower()
        return next((fmt for fmt, names in _SUFFIXES.items() if suffix in names), None)


_SUFFIXES = {
    ExportFormat.ONNX: (".onnx",),
    ExportFormat.TORCHSCRIPT: (".pt", ".ts", ".jit", ".torchscript"),
    ExportFormat.EXPORTED: (".pt2",),
}


def parse_format(value: ExportFormat | str) -> ExportFormat:
    """``value`` as an :class:`ExportFormat`, or a :class:`CoatnetError` listing the choices."""
    if isinstance(value, ExportFormat):
        return value
    try:
        return ExportFormat(str(value).strip().lower())
    except ValueError:
        choices = ", ".join(f.value for f in ExportFormat)
        raise CoatnetError(
            f"format must be one of {choices}, got {str(value)[:40]!r}.", param="format"
        ) from None


class DeployRuntime(str, Enum):
    """Where an exported model runs: ``onnxruntime`` (an ONNX file) or ``torch``."""

    ONNXRUNTIME = "onnxruntime"
    TORCH = "torch"

    def __str__(self) -> str:
        return self.value


def parse_runtime(value: DeployRuntime | str) -> DeployRuntime:
    """``value`` as a :class:`DeployRuntime`, or a :class:`CoatnetError` naming the choices."""
    try:
        return DeployRuntime(value.value if isinstance(value, Enum) else value)
    except ValueError:
        raise CoatnetError(
            f"runtime must be onnxruntime or torch, got {str(value)[:40]!r}.", param="runtime"
        ) from None
