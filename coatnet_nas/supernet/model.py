"""The supernet: per stage position a C path and/or a T path of elastic blocks, one head.

``Supernet(space)`` allocates every block at the largest size any choice of ``space`` asks for
(:func:`~coatnet_nas.supernet.fit.block_limits`); ``set_active(spec)`` (or ``forward(x,
spec)``) runs the sub-network of a proxy-size spec: its stem depth and width, the first ``depth``
blocks of its letter's path at each position, its widths, kernels, expand/MLP ratios and heads.
``weights(spec)`` is that sub-network's state dict under the names of the model
:func:`~coatnet_nas.build_model` builds from the same spec.
"""

from __future__ import annotations

import torch
from torch import nn

from coatnet_nas.blocks.layers import init_weights
from coatnet_nas.errors import CoatnetError
from coatnet_nas.limits import bounded
from coatnet_nas.spec import ModelSpec
from coatnet_nas.supernet.blocks import (
    ElasticHead,
    ElasticMBConv,
    ElasticStem,
    ElasticTransformerBlock,
    Weights,
)
from coatnet_nas.supernet.fit import block_choice, block_limits, fit_problems
from coatnet_nas.supernet.space import ElasticSpace

__all__ = ["Supernet"]


def _path(space: ElasticSpace, i: int, letter: str, in_size: tuple[int, int]) -> nn.ModuleList:
    blocks: list[nn.Module] = []
    for j in range(space.stages[i].depths[1]):
        lim = block_limits(space, i, letter, j)
        if letter == "C":
            blocks.append(ElasticMBConv(lim, 2 if j == 0 else 1))
        else:
            size = in_size if j == 0 else (in_size[0] // 2, in_size[1] // 2)
            blocks.append(ElasticTransformerBlock(lim, size, downsample=j == 0))
    return nn.ModuleList(blocks)


class Supernet(nn.Module):
    """Every architecture of an :class:`ElasticSpace`, sharing weights within each block type."""

    def __init__(self, space: ElasticSpace, *, initialize: bool = True):
        super().__init__()
        self.space = space
        max_stem = max(space.stem_widths)
        self.stems = nn.ModuleDict(
            {str(d): ElasticStem(space.in_chans, max_stem, d) for d in space.stem_depths}
        )
        h, w = space.image_size
        size = (h // 2, w // 2)  # after the stem
        stages = []
        for i, stage in enumerate(space.stages):
            stages.append(nn.ModuleDict({x: _path(space, i, x, size) for x in stage.letters}))
            size = (size[0] // 2, size[1] // 2)
        self.stages = nn.ModuleList(stages)
        widest = max(max(s.all_widths()) for s in space.stages)
        self.head = ElasticHead(widest, space.num_classes)
        self.active: ModelSpec | None = None
        if initialize:
            self.apply(init_weights)

    def no_weight_decay(self) -> set[str]:
        """As :meth:`CoAtNet.no_weight_decay`: 1-D parameters and the relative-position tables."""
        return {n for n, p in self.named_parameters() if p.ndim <= 1 or n.endswith("bias_table")}

    # --- choosing a sub-network ----------------------------------------------------------------
    def check(self, spec: ModelSpec, what: str = "") -> None:
        """Raise :class:`CoatnetError` (one paragraph) when ``spec`` does not fit."""
        problems = fit_problems(self.space, spec)
        if problems:
            more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
            shown = "; ".join(problems[:5]) + more
            raise CoatnetError(
                bounded(
                    f"{what or spec.name} ({spec.layout}) is outside what this supernet covers: "
                    f"{shown}. The supernet holds {self.space.describe()}. Score it with another "
                    "proxy (e.g. train), or train a supernet over a space that contains it."
                ),
                param="proxy",
            )

    def set_active(self, spec: ModelSpec | None) -> None:
        """Make ``forward(x)`` run ``spec``'s sub-network (checked; None: no default)."""
        if spec is not None:
            self.check(spec)
        self.active = spec

    def forward(self, x: torch.Tensor, spec: ModelSpec | None = None) -> torch.Tensor:
        spec = spec if spec is not None else self.active
        if spec is None:
            raise CoatnetError("no sub-network is active: call set_active(spec) first.")
        x = self.stems[str(spec.stem.depth)](x, spec.stem.width)
        in_ch = spec.stem.width
        for i, stage in enumerate(spec.stages):
            blocks = zip(self.stages[i][stage.type], range(stage.depth), strict=False)
            if stage.type == "T":  # blocks run on row-major tokens; the stage returns a map
                n, _, h, w = x.shape
                x = x.flatten(2).transpose(1, 2)
                for block, j in blocks:
                    x = block(x, block_choice(stage, in_ch, j))
                x = x.transpose(1, 2).reshape(n, stage.width, h // 2, w // 2)
            else:
                for block, j in blocks:
                    x = block(x, block_choice(stage, in_ch, j))
            in_ch = stage.width
        return self.head(x, spec.stages[-1].width)

    # --- the sub-network's weights -------------------------------------------------------------
    def weights(self, spec: ModelSpec) -> Weights:
        """``spec``'s slices under the standalone model's state-dict names (views, not copies)."""
        self.check(spec)
        stem = self.stems[str(spec.stem.depth)].weights(spec.stem.width)
        out = {f"stem.{k}": v for k, v in stem.items()}
        in_ch = spec.stem.width
        for i, stage in enumerate(spec.stages):
            for j in range(stage.depth):
                block = self.stages[i][stage.type][j]
                prefix = f"stages.{i}.{j}." if stage.type == "C" else f"stages.{i}.blocks.{j}."
                weights = block.weights(block_choice(stage, in_ch, j))
                out |= {prefix + k: v for k, v in weights.items()}
            in_ch = stage.width
        head = self.head.weights(spec.stages[-1].width)
        return out | {f"head.{k}": v for k, v in head.items()}
