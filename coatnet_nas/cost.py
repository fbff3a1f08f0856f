"""Closed-form params and FLOPs of a spec, without building or tracing it.

Each block type supplies its own stage cost beside its module (see the registry), so the total is
a sum over stem, stages and head. The numbers follow fvcore's conventions exactly (MACs, same op
coverage, attention included): params equal the built model's count, FLOPs match the profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coatnet_nas.blocks import cost as C
from coatnet_nas.blocks.stem import patch_stem_cost, stem_cost
from coatnet_nas.spec import ModelSpec


@dataclass(frozen=True)
class StageCost:
    name: str
    type: str
    params: int
    flops: int


@dataclass(frozen=True)
class Cost:
    params: int
    flops: int
    stages: tuple[StageCost, ...]
    image_size: tuple[int, int]

    def to_dict(self) -> dict:
        return {
            "params": self.params,
            "flops": self.flops,
            "image_size": list(self.image_size),
            "stages": [vars(s) for s in self.stages],
        }


def head_cost(width: int, num_classes: int) -> C.LayerCost:
    return C.layer_norm(width, 1) + C.linear(width, num_classes)


def estimate_cost(spec: ModelSpec, image_size: int | Sequence[int] | None = None) -> Cost:
    """Params and FLOPs (MACs) of ``spec`` at its image size, or at ``image_size``."""
    if image_size is not None:
        spec = spec.with_image_size(image_size)
    size = spec.image_size
    if spec.stem.kind == "patch":
        stem = patch_stem_cost(spec.in_chans, spec.stem.width, spec.stem.patch_size, size)
    else:
        stem = stem_cost(spec.in_chans, spec.stem.width, spec.stem.depth, size)
    rows = [StageCost("S0", "stem", stem.params, stem.flops)]
    in_ch, res = spec.stem.width, spec.resolutions()[0]
    for i, stage in enumerate(spec.stages):
        c = stage.block.cost_fn()(in_ch, stage, res)
        rows.append(StageCost(f"S{i + 1}", stage.type, c.params, c.flops))
        in_ch, res = stage.width, (res[0] // 2, res[1] // 2)
    head = head_cost(in_ch, spec.num_classes)
    rows.append(StageCost("head", "head", head.params, head.flops))
    return Cost(
        params=sum(r.params for r in rows),
        flops=sum(r.flops for r in rows),
        stages=tuple(rows),
        image_size=tuple(size),
    )
