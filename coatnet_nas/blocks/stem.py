"""S0: the convolution stem (3x3 convs, the first with stride 2, BN + GELU between)."""

from __future__ import annotations

import torch
from torch import nn

from coatnet_nas.blocks import cost as C
from coatnet_nas.blocks.base import StemLike


class ConvStem(nn.Module):
    def __init__(self, in_chans: int, width: int, depth: int = 2):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            last = i == depth - 1
            cin = in_chans if i == 0 else width
            layers.append(nn.Conv2d(cin, width, 3, stride=2 if i == 0 else 1, padding=1, bias=last))
            if not last:
                layers += [nn.BatchNorm2d(width), nn.GELU()]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class PatchStem(nn.Module):
    """ViT-style patch embedding: one ``p x p`` convolution with stride ``p``."""

    def __init__(self, in_chans: int, width: int, patch_size: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, width, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


def build_stem(in_chans: int, stem: StemLike) -> nn.Module:
    if stem.kind == "patch":
        return PatchStem(in_chans, stem.width, stem.patch_size)
    return ConvStem(in_chans, stem.width, stem.depth)


def patch_stem_cost(
    in_chans: int, width: int, patch: int, image_size: tuple[int, int]
) -> C.LayerCost:
    pixels = (image_size[0] // patch) * (image_size[1] // patch)
    return C.conv(in_chans, width, patch, pixels, bias=True)


def stem_cost(in_chans: int, width: int, depth: int, image_size: tuple[int, int]) -> C.LayerCost:
    pixels = (image_size[0] // 2) * (image_size[1] // 2)
    total = C.ZERO
    for i in range(depth):
        last = i == depth - 1
        total += C.conv(in_chans if i == 0 else width, width, 3, pixels, bias=last)
        if not last:
            total += C.batch_norm(width, pixels)
    return total
