"""Exponential moving average of a model's weights (``ema = decay * ema + (1 - decay) * w``).

The averaged copy usually evaluates better than the raw weights late in a long run (the
CoAtNet/EfficientNet recipes use 0.9999), so a run evaluates both. Buffers (BatchNorm
statistics) are copied, not averaged; precise BN then recomputes them for the averaged weights
before the EMA is evaluated, since statistics of other weights would not fit it.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["ModelEma"]


class ModelEma:
    """An averaged copy of ``model`` on the same device, never trained directly."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self._pairs = [
            (e, p)
            for e, p in zip(self.module.parameters(), model.parameters(), strict=True)
            if p.dtype.is_floating_point
        ]
        self._buffers = list(zip(self.module.buffers(), model.buffers(), strict=True))

    @torch.no_grad()
    def update(self) -> None:
        """One averaging step toward the current weights (after each optimizer step)."""
        ema = [e for e, _ in self._pairs]
        torch._foreach_lerp_(ema, [p.detach() for _, p in self._pairs], 1.0 - self.decay)
        for e, b in self._buffers:
            e.copy_(b)

    def state_dict(self) -> dict[str, Any]:
        return {k: v.detach().cpu() for k, v in self.module.state_dict().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state)
