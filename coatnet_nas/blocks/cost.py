"""Closed-form (params, FLOPs) of the primitive layers, in fvcore's conventions.

FLOPs are multiply-accumulates and cover exactly what fvcore counts in eval mode: convolutions and
linears (MACs), BatchNorm (2 per element with affine), LayerNorm (5 per element with affine),
matmuls, and our registered SDPA handle. Pooling, means, activations and element-wise ops are
free, as they are for fvcore.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LayerCost:
    params: int = 0
    flops: int = 0

    def __add__(self, other: LayerCost) -> LayerCost:
        return LayerCost(self.params + other.params, self.flops + other.flops)

    def __mul__(self, times: int) -> LayerCost:
        return LayerCost(self.params * times, self.flops * times)


ZERO = LayerCost()


def conv(
    cin: int, cout: int, k: int, out_pixels: int, groups: int = 1, bias: bool = False
) -> LayerCost:
    weights = cout * (cin // groups) * k * k
    return LayerCost(weights + (cout if bias else 0), out_pixels * weights)


def linear(cin: int, cout: int, tokens: int = 1, bias: bool = True) -> LayerCost:
    return LayerCost(cin * cout + (cout if bias else 0), tokens * cin * cout)


def batch_norm(channels: int, pixels: int) -> LayerCost:
    return LayerCost(2 * channels, 2 * channels * pixels)


def layer_norm(channels: int, tokens: int) -> LayerCost:
    return LayerCost(2 * channels, 5 * channels * tokens)
