"""A spec adapted to the data it trains on (image size, classes, channels), and its model."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from coatnet_nas.data.tensors import ProxyData
from coatnet_nas.errors import SpecError
from coatnet_nas.spec import ModelSpec, validation_reason

__all__ = ["build_for_data", "spec_for_data"]


def spec_for_data(
    spec: ModelSpec, data: ProxyData, drop_path_rate: float | None = None
) -> ModelSpec:
    """``spec`` at the data's image size, classes and channels (and optional stochastic depth)."""
    changes: dict[str, Any] = {
        "image_size": data.image_size,
        "num_classes": data.num_classes,
        "in_chans": data.in_chans,
    }
    if drop_path_rate is not None:
        changes["drop_path_rate"] = drop_path_rate
    try:
        return spec.evolve(**changes)
    except ValidationError as exc:
        h, w = data.image_size
        raise SpecError(
            f"{spec.name} cannot be trained on {data.name} at {h}x{w}: {validation_reason(exc)}",
            param="image_size",
        ) from None


def build_for_data(
    spec: ModelSpec, data: ProxyData, *, drop_path_rate: float | None = None, seed: int = 0
) -> nn.Module:
    """The model of ``spec`` adapted to ``data``, initialized reproducibly from ``seed``."""
    from coatnet_nas.builder import CoAtNet

    adapted = spec_for_data(spec, data, drop_path_rate)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CoAtNet(adapted)
