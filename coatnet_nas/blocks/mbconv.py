"""MBConv with squeeze-excitation: the convolution (``C``) stage of CoAtNet.

Pre-norm inverted bottleneck, narrow -> wide -> narrow (the reverse of the classic wide -> narrow
-> wide bottleneck). The downsampling block follows the paper's equation
``x <- Proj(Pool(x)) + Conv(DepthConv(Conv(Norm(x), stride=2)))``: the stride sits in the first
1x1 conv, so the expansion and the depthwise conv run at the lower resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from coatnet_nas.blocks import cost as C
from coatnet_nas.blocks.base import StageLike
from coatnet_nas.blocks.layers import DropPath, pool2d
from coatnet_nas.blocks.options import MBConvOptions


def hidden_width(out_ch: int, expand_ratio: float) -> int:
    return max(1, round(out_ch * expand_ratio))


def se_width(in_ch: int, se_ratio: float) -> int:
    """SE squeeze width, relative to the block input (EfficientNet/CoAtNet convention)."""
    return max(1, int(in_ch * se_ratio)) if se_ratio > 0 else 0


class SqueezeExcite(nn.Module):
    """Global pool -> 1x1 reduce -> GELU -> 1x1 expand -> sigmoid gate on channels."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.act = nn.GELU()
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean(dim=(2, 3), keepdim=True)
        return x * self.expand(self.act(self.reduce(scale))).sigmoid()


class MBConv(nn.Module):
    def __init__(
        self, in_ch: int, out_ch: int, stride: int, opts: MBConvOptions, drop_path: float = 0.0
    ):
        super().__init__()
        hidden = hidden_width(out_ch, opts.expand_ratio)
        k = opts.kernel_size
        self.pool = opts.pool if stride > 1 else None
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        self.norm = nn.BatchNorm2d(in_ch)
        self.expand = nn.Conv2d(in_ch, hidden, 1, stride=stride, bias=False)
        self.expand_norm = nn.BatchNorm2d(hidden)
        self.depthwise = nn.Conv2d(hidden, hidden, k, padding=k // 2, groups=hidden, bias=False)
        self.depthwise_norm = nn.BatchNorm2d(hidden)
        self.act = nn.GELU()
        reduced = se_width(in_ch, opts.se_ratio)
        self.se = SqueezeExcite(hidden, reduced) if reduced else nn.Identity()
        self.project = nn.Conv2d(hidden, out_ch, 1)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.shortcut(pool2d(x, self.pool) if self.pool else x)
        x = self.act(self.expand_norm(self.expand(self.norm(x))))
        x = self.act(self.depthwise_norm(self.depthwise(x)))
        x = self.project(self.se(x))
        return shortcut + self.drop_path(x)


def build_stage(
    in_ch: int, stage: StageLike, in_size: tuple[int, int], drop_path_rates: Sequence[float]
) -> nn.Sequential:
    blocks = [
        MBConv(
            in_ch if i == 0 else stage.width,
            stage.width,
            2 if i == 0 else 1,
            stage.options,
            drop_path_rates[i],
        )
        for i in range(stage.depth)
    ]
    return nn.Sequential(*blocks)


def block_cost(
    in_ch: int, out_ch: int, in_pixels: int, out_pixels: int, opts: MBConvOptions
) -> C.LayerCost:
    hidden = hidden_width(out_ch, opts.expand_ratio)
    reduced = se_width(in_ch, opts.se_ratio)
    total = (
        C.batch_norm(in_ch, in_pixels)
        + C.conv(in_ch, hidden, 1, out_pixels)
        + C.batch_norm(hidden, out_pixels)
        + C.conv(hidden, hidden, opts.kernel_size, out_pixels, groups=hidden)
        + C.batch_norm(hidden, out_pixels)
        + C.conv(hidden, out_ch, 1, out_pixels, bias=True)
    )
    if reduced:
        total += C.conv(hidden, reduced, 1, 1, bias=True) + C.conv(reduced, hidden, 1, 1, bias=True)
    if in_ch != out_ch:
        total += C.conv(in_ch, out_ch, 1, out_pixels, bias=True)
    return total


def stage_cost(in_ch: int, stage: StageLike, in_size: tuple[int, int]) -> C.LayerCost:
    h, w = in_size
    in_pixels, out_pixels = h * w, (h // 2) * (w // 2)
    first = block_cost(in_ch, stage.width, in_pixels, out_pixels, stage.options)
    rest = block_cost(stage.width, stage.width, out_pixels, out_pixels, stage.options)
    return first + rest * (stage.depth - 1)
