"""What an export starts from: a spec, a spec with a checkpoint's weights, or a checkpoint alone.

A checkpoint from ``coatnet train --save`` stores the spec it was trained with, adapted to its
data (the data set's classes and channels, the training resolution). :func:`export_source`
exports such a checkpoint on its own, and fills a given spec's classes, channels and image size
from the checkpoint when those are the only differences (a model trained on Fashion-MNIST at
32 px from ``specs/layouts/cttt.yaml``), saying so in :attr:`ExportSource.note`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coatnet_nas.errors import CoatnetError
from coatnet_nas.spec import ModelSpec

__all__ = ["ExportSource", "export_source", "is_checkpoint"]

_FILLED = ("num_classes", "in_chans", "image_size")


@dataclass(frozen=True)
class ExportSource:
    """The spec to build, the weights to load into it (None: random) and what was filled in."""

    spec: ModelSpec
    weights: Path | None = None
    note: str | None = None


def is_checkpoint(path: str | Path) -> bool:
    """True for a file written by ``torch.save`` (a zip archive), never for a YAML spec."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return path.is_file() and handle.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def _stored_spec(path: Path, param: str) -> ModelSpec:
    from coatnet_nas.spec import spec_from_dict
    from coatnet_nas.train.checkpoint import read_payload

    payload = read_payload(path, param=param)
    if not payload.get("spec"):
        raise CoatnetError(
            f"{param} {path}: this checkpoint stores no spec; give the spec it was trained with "
            "and the checkpoint as `weights`.",
            param=param,
        )
    return spec_from_dict(payload["spec"], source=str(path))


def _filled(spec: ModelSpec, stored: ModelSpec) -> tuple[ModelSpec, str | None]:
    """``spec`` with the checkpoint's classes, channels and size when only those differ."""
    changes: dict[str, Any] = {k: getattr(stored, k) for k in _FILLED}
    differ = [k for k in _FILLED if getattr(spec, k) != getattr(stored, k)]
    if not differ:
        return spec, None
    candidate = spec.evolve(**changes)
    if candidate.to_dict() != stored.to_dict():
        return spec, None  # other differences: the weights' own error says which
    said = ", ".join(
        f"{k} {_show(getattr(stored, k))} (the spec says {_show(getattr(spec, k))})" for k in differ
    )
    return candidate, f"from the checkpoint: {said}"


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return str(value)


def export_source(
    source: str | Path | ModelSpec,
    *,
    weights: str | Path | None = None,
    image_size: int | str | tuple[int, int] | None = None,
) -> ExportSource:
    """The spec and weights to export ``source`` (a spec object, YAML path or preset, or a
    checkpoint) with; ``image_size`` exports at another resolution (tables resized)."""
    from coatnet_nas.presets import resolve_spec
    from coatnet_nas.scaling import shrink_spec

    note = None
    weights_path = Path(weights) if weights is not None else None
    if not isinstance(source, ModelSpec) and is_checkpoint(source):
        if weights_path is not None:
            raise CoatnetError(
                f"weights: {source} is a checkpoint already; export it alone, or give the spec "
                "it was trained with and the checkpoint as `weights`.",
                param="weights",
            )
        spec, weights_path = _stored_spec(Path(source), "source"), Path(source)
    else:
        spec = source if isinstance(source, ModelSpec) else resolve_spec(str(source))
        if weights_path is not None and is_checkpoint(weights_path):
            spec, note = _filled(spec, _stored_spec(weights_path, "weights"))
    if image_size is not None:
        spec = shrink_spec(spec, image_size=image_size)
    return ExportSource(spec, weights_path, note)
