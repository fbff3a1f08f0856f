"""The builder's real modules for one kind, with an input of the shape the model feeds them,
and the closed-form cost of a kind (the features a regressor interpolates with)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from coatnet_nas.blocks.cost import LayerCost
from coatnet_nas.blocks.stem import build_stem, patch_stem_cost, stem_cost
from coatnet_nas.builder import ClassifierHead
from coatnet_nas.cost import head_cost
from coatnet_nas.latency.kinds import BlockKind
from coatnet_nas.registry import block_type
from coatnet_nas.spec import StageSpec, StemSpec

__all__ = ["REPEAT_CHAIN", "KindModule", "kind_cost", "kind_module"]

# Repeated blocks are timed as a chain of this many distinct blocks (per-block time = total /
# chain): consecutive blocks with their own weights, as in the model, not one block re-run on
# weights that stay in cache.
REPEAT_CHAIN = 2


@dataclass
class KindModule:
    module: nn.Module
    example: torch.Tensor
    blocks: int  # how many blocks of the kind one forward runs


def _stage(kind: BlockKind, depth: int, width: int) -> StageSpec:
    return StageSpec(type=kind.type, depth=depth, width=width, options=dict(kind.options))


def _stem(kind: BlockKind) -> StemSpec:
    patch = kind.option("patch_size") or 4
    return StemSpec(kind=kind.type, depth=kind.option("depth"), width=kind.out_ch, patch_size=patch)


def _block_list(stage: nn.Module) -> nn.Sequential:
    """The stage's blocks in order: the stage itself (MBConv) or its ``blocks`` (Transformer)."""
    blocks = getattr(stage, "blocks", stage)
    if not isinstance(blocks, nn.Sequential):
        raise TypeError(f"cannot find the blocks of a {type(stage).__name__} stage")
    return blocks


def kind_module(kind: BlockKind, batch: int, in_chans: int = 3) -> KindModule:
    """Build the kind's module(s) exactly as the builder does, in eval mode, with an input."""
    h, w = kind.size
    if kind.role == "stem":
        module: nn.Module = build_stem(kind.in_ch, _stem(kind))
        example = torch.randn(batch, kind.in_ch, h, w)
        return KindModule(module.eval(), example, 1)
    if kind.role == "head":
        head = ClassifierHead(kind.in_ch, kind.out_ch)
        return KindModule(head.eval(), torch.randn(batch, kind.in_ch, h, w), 1)
    build = block_type(kind.type).builder()
    if kind.role == "first":  # a one-block stage: the block plus the stage's own glue
        stage = build(kind.in_ch, _stage(kind, 1, kind.out_ch), kind.size, [0.0])
        return KindModule(stage.eval(), torch.randn(batch, kind.in_ch, h, w), 1)
    # repeat: build a stage of 1 + REPEAT_CHAIN blocks, keep the repeated ones, and capture the
    # input they receive inside the real stage (token or map layout, whatever the type uses).
    in_size = (2 * h, 2 * w)
    stage = build(kind.in_ch, _stage(kind, 1 + REPEAT_CHAIN, kind.out_ch), in_size, [0.0] * 3)
    stage.eval()
    blocks = _block_list(stage)
    captured: list[torch.Tensor] = []
    hook = blocks[1].register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    with torch.inference_mode():
        stage(torch.randn(batch, kind.in_ch, *in_size))
    hook.remove()
    chain = nn.Sequential(*list(blocks)[1:]).eval()
    return KindModule(chain, captured[0].clone(), REPEAT_CHAIN)


def kind_cost(kind: BlockKind, in_chans: int = 3) -> LayerCost:
    """Closed-form params/FLOPs of one block of the kind (what the cost model says it does)."""
    if kind.role == "stem":
        if kind.type == "patch":
            return patch_stem_cost(kind.in_ch, kind.out_ch, kind.option("patch_size"), kind.size)
        return stem_cost(kind.in_ch, kind.out_ch, kind.option("depth"), kind.size)
    if kind.role == "head":
        return head_cost(kind.in_ch, kind.out_ch)
    cost = block_type(kind.type).cost_fn()
    if kind.role == "first":
        return cost(kind.in_ch, _stage(kind, 1, kind.out_ch), kind.size)
    in_size = (2 * kind.size[0], 2 * kind.size[1])
    one = cost(kind.in_ch, _stage(kind, 1, kind.out_ch), in_size)
    two = cost(kind.in_ch, _stage(kind, 2, kind.out_ch), in_size)
    return LayerCost(two.params - one.params, two.flops - one.flops)
