"""Small shared layers: stochastic depth and 2x2 stride-2 pooling on NCHW maps or token grids."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def pool2d(x: torch.Tensor, kind: str) -> torch.Tensor:
    """2x2, stride-2 pooling of an NCHW map (the paper's ``Pool`` in downsampling blocks)."""
    return F.avg_pool2d(x, 2) if kind == "avg" else F.max_pool2d(x, 2)


def pool_tokens(x: torch.Tensor, size: tuple[int, int], kind: str) -> torch.Tensor:
    """2x2, stride-2 pooling of row-major tokens ``(N, H*W, C)`` without leaving token layout."""
    n, _, c = x.shape
    h, w = size
    grid = x.reshape(n, h // 2, 2, w // 2, 2, c)
    pooled = grid.mean(dim=(2, 4)) if kind == "avg" else grid.amax(dim=(2, 4))
    return pooled.reshape(n, (h // 2) * (w // 2), c)


def init_weights(module: nn.Module) -> None:
    """Truncated-normal linears (ViT convention), fan-out Kaiming convs, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
