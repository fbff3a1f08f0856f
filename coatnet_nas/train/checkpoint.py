"""Checkpoints: weights plus the spec and result, loadable without unpickling code.

Every file carries a SHA-256 of its contents (``digest``: tensors' bytes, dtypes and shapes, and
every other value), checked on load: torch's reader does not verify its zip records' CRCs, so a
bit flipped on disk or in transfer would otherwise load as silently wrong weights. A truncated
file, one of another program and one whose digest does not match are each refused with one
paragraph (:class:`~coatnet_nas.errors.CoatnetError`). Files written before the digest load as
they did.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from coatnet_nas._io import atomic_write, written_size
from coatnet_nas.errors import CoatnetError
from coatnet_nas.spec import ModelSpec, spec_from_dict
from coatnet_nas.train.result import TrainResult

__all__ = [
    "FORMAT",
    "Checkpoint",
    "load_checkpoint",
    "payload_digest",
    "read_payload",
    "save_checkpoint",
    "save_payload",
]

# 2: adds the run's state under "train" (resume); files of format 1 still load.
FORMAT = "coatnet-nas/checkpoint-2"


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    spec: ModelSpec | None = None,
    result: TrainResult | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> Path:
    """Write weights (plus spec, result and optimizer state) as plain tensors and containers.

    Only types that ``torch.load(weights_only=True)`` accepts are stored, so loading never
    unpickles code. The file is written to a temporary name and renamed into place, and a target
    that is not a regular file (a directory, a device) is refused.
    """
    spec = spec if spec is not None else getattr(model, "spec", None)
    payload: dict[str, Any] = {
        "format": FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "spec": spec.to_dict() if isinstance(spec, ModelSpec) else None,
        "result": result.to_dict() if result is not None else None,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
    }
    return save_payload(path, payload)


def save_payload(path: str | Path, payload: dict[str, Any], *, param: str = "save") -> Path:
    """``torch.save`` (with its digest) to a temporary name renamed into place; a full disk is
    one paragraph (:class:`~coatnet_nas.errors.DiskFullError`), the previous file left intact."""
    payload = {**payload, DIGEST: payload_digest(payload)}
    return atomic_write(
        path,
        lambda tmp: _save_through_python(payload, tmp),
        param=param,
        size=lambda: written_size(lambda f: torch.save(payload, f)),
    )


def _save_through_python(payload: dict[str, Any], tmp: Path) -> None:
    """``torch.save`` into a file Python opened: the ``OSError`` of a full disk or a spent
    quota then stays attached to torch's ``RuntimeError`` (as its context), where
    :func:`~coatnet_nas._io.atomic_write` finds its errno; same speed as a path (measured)."""
    with open(tmp, "wb") as f:
        torch.save(payload, f)


@dataclass
class Checkpoint:
    """Weights, spec, result and optimizer state of a saved run (see :func:`load_checkpoint`)."""

    state_dict: dict[str, torch.Tensor]
    spec: ModelSpec | None
    result: dict[str, Any] | None
    optimizer: dict[str, Any] | None

    def build(self) -> nn.Module:
        """Rebuild the model from the stored spec and load the weights."""
        from coatnet_nas.builder import CoAtNet

        if self.spec is None:
            raise CoatnetError(
                "this checkpoint has no spec; build the model yourself and load state_dict."
            )
        model = CoAtNet(self.spec)
        model.load_state_dict(self.state_dict)
        return model


def read_payload(path: str | Path, *, param: str | None = None) -> dict[str, Any]:
    """The checkpoint's raw dict, read with ``weights_only=True`` (no arbitrary code runs) and
    checked against its digest."""
    path = Path(path)
    named = f"{param} {path}" if param else str(path)
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol warning is not the news
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CoatnetError(f"{named}: no such checkpoint.", param=param) from None
    except IsADirectoryError:
        raise CoatnetError(f"{named}: is a directory, not a checkpoint.", param=param) from None
    except Exception as exc:  # corrupt file or disallowed content: a user-facing problem
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise CoatnetError(
            f"{named}: not a loadable checkpoint: the file is truncated or damaged (a copy or "
            f"write that did not finish), or another program wrote it ({reason}).",
            param=param,
        ) from None
    tag = payload.get("format") if isinstance(payload, dict) else None
    if not (isinstance(tag, str) and tag.startswith("coatnet-nas/checkpoint")):
        raise CoatnetError(
            f"{named}: not a coatnet-nas checkpoint (another program wrote it; this tool reads "
            "the files that coatnet train --save and save_checkpoint write).",
            param=param,
        )
    if "state_dict" not in payload:
        raise CoatnetError(f"{named}: not a coatnet-nas checkpoint (no weights).", param=param)
    stored = payload.get(DIGEST)
    if stored is not None and stored != payload_digest(payload):
        raise CoatnetError(
            f"{named}: the checkpoint is damaged: its contents no longer match the checksum "
            "written with it (a bit flipped on disk or in transfer, or the file was edited). "
            "Use another copy, or train again.",
            param=param,
        )
    return payload


DIGEST = "digest"


def payload_digest(payload: dict[str, Any]) -> str:
    """SHA-256 of a checkpoint's contents (all but the digest itself), in storage order."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in payload.items() if k != DIGEST})
    return h.hexdigest()


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{flat.dtype}{tuple(value.shape)}:".encode())
        h.update(flat.view(torch.uint8).numpy())
    elif isinstance(value, dict):
        h.update(b"{")
        for key, item in value.items():
            _feed(h, key)
            _feed(h, item)
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[" if isinstance(value, list) else b"(")
        for item in value:
            _feed(h, item)
        h.update(b"]")
    else:
        h.update(f"{type(value).__name__}:{value!r};".encode())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint with ``weights_only=True`` (no arbitrary code runs)."""
    payload = read_payload(path)
    state = {k: v.to(map_location) for k, v in payload["state_dict"].items()}
    spec = spec_from_dict(payload["spec"], source=str(path)) if payload.get("spec") else None
    return Checkpoint(state, spec, payload.get("result"), payload.get("optimizer"))
