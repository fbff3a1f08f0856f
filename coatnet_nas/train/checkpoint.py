"""Checkpoints: weights plus the spec and result, loadable without unpickling code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from coatnet_nas._io import atomic_write
from coatnet_nas.errors import CoatnetError
from coatnet_nas.spec import ModelSpec, spec_from_dict
from coatnet_nas.train.result import TrainResult

__all__ = ["FORMAT", "Checkpoint", "load_checkpoint", "read_payload", "save_checkpoint"]

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
    return atomic_write(path, lambda tmp: torch.save(payload, tmp), param="save")


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
    """The checkpoint's raw dict, read with ``weights_only=True`` (no arbitrary code runs)."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CoatnetError(f"{path}: no such checkpoint.", param=param) from None
    except IsADirectoryError:
        raise CoatnetError(f"{path}: is a directory, not a checkpoint.", param=param) from None
    except Exception as exc:  # corrupt file or disallowed content: a user-facing problem
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise CoatnetError(f"{path}: not a loadable checkpoint ({reason}).", param=param) from None
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise CoatnetError(f"{path}: not a coatnet-nas checkpoint.", param=param)
    return payload


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint with ``weights_only=True`` (no arbitrary code runs)."""
    payload = read_payload(path)
    state = {k: v.to(map_location) for k, v in payload["state_dict"].items()}
    spec = spec_from_dict(payload["spec"], source=str(path)) if payload.get("spec") else None
    return Checkpoint(state, spec, payload.get("result"), payload.get("optimizer"))
