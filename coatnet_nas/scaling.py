"""Scale specs: proxy shrinking (width/depth multipliers) and fitting to a FLOPs/params budget.

Widths round to multiples of 8, and of ``head_dim`` for T stages (so every scaled spec stays
valid); depths stay >= 1. Cost is non-decreasing in a multiplier, so fitting is a bisection on the
multiplier followed by a greedy one-step-per-stage refinement that lands close under the budget.
Everything is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import Enum

from coatnet_nas.errors import BudgetError, CoatnetError, as_choice
from coatnet_nas.spec import ModelSpec, StageSpec


class Vary(str, Enum):
    """What budget fitting scales: stage widths, stage depths, or both (compound)."""

    WIDTHS = "widths"
    DEPTHS = "depths"
    BOTH = "both"

    def __str__(self) -> str:
        return self.value


WIDTH_QUANTUM = 8


def width_quantum(stage: StageSpec | None) -> int:
    """Allowed width step: lcm(8, the block type's width multiple), e.g. head_dim for T stages."""
    multiple = stage.options.width_multiple() if stage is not None else 1
    return math.lcm(WIDTH_QUANTUM, multiple)


def round_width(width: float, quantum: int) -> int:
    return max(quantum, int(width / quantum + 0.5) * quantum)


def _with(spec: ModelSpec, widths: Sequence[int], depths: Sequence[int]) -> ModelSpec:
    return spec.evolve(
        stem={**spec.stem.model_dump(), "width": widths[0]},
        stages=[
            {"type": s.type, "depth": d, "width": w, "options": s.options}
            for s, w, d in zip(spec.stages, widths[1:], depths[1:], strict=True)
        ],
    )


def scale_spec(spec: ModelSpec, width_mult: float = 1.0, depth_mult: float = 1.0) -> ModelSpec:
    """Multiply widths and stage depths (the stem keeps its depth), rounding to valid values."""
    if width_mult <= 0 or depth_mult <= 0:
        raise BudgetError(
            f"multipliers must be positive, got width {width_mult}, depth {depth_mult}"
        )
    if width_mult == 1.0 and depth_mult == 1.0:
        return spec
    stages = (None, *spec.stages)
    widths = [
        round_width(w * width_mult, width_quantum(s))
        for w, s in zip(spec.widths, stages, strict=True)
    ]
    depths = [spec.stem.depth, *(max(1, round(d * depth_mult)) for d in spec.depths[1:])]
    return _with(spec, widths, depths)


def estimate_cost(spec: ModelSpec):  # type: ignore[no-untyped-def]
    """The closed-form cost (imported on use: the cost model loads torch, ``Vary`` must not)."""
    from coatnet_nas.cost import estimate_cost as estimate

    return estimate(spec)


def _multipliers(vary: Vary, s: float) -> tuple[float, float]:
    if vary == "widths":
        return s, 1.0
    if vary == "depths":
        return 1.0, s
    # Compound: FLOPs grow ~ depth * width^2, so pair depth s with width sqrt(s) (FLOPs ~ s^2).
    return math.sqrt(s), s


def fit_to_budget(
    spec: ModelSpec,
    flops: int | None = None,
    params: int | None = None,
    vary: Vary | str = Vary.WIDTHS,
    image_size: int | Sequence[int] | None = None,
) -> ModelSpec:
    """The largest scaling of ``spec`` whose cost is within ``flops`` and ``params``.

    Costs are taken at ``image_size`` (default: the spec's own), which the result keeps.
    """
    if flops is None and params is None:
        raise BudgetError("fit_to_budget needs a FLOPs budget, a params budget, or both.")
    vary = as_choice(Vary, vary, "vary")
    if image_size is not None:
        spec = spec.with_image_size(image_size)

    def fits(candidate: ModelSpec) -> bool:
        cost = estimate_cost(candidate)
        return (flops is None or cost.flops <= flops) and (params is None or cost.params <= params)

    def at(s: float) -> ModelSpec:
        return scale_spec(spec, *_multipliers(vary, s))

    lo, hi = 1e-3, 1.0
    while fits(at(hi)) and hi < 1e4:
        lo, hi = hi, hi * 2
    if not fits(at(lo)):
        smallest = estimate_cost(at(lo))
        raise BudgetError(
            f"budget cannot be met by scaling {spec.name} ({vary.value}): the smallest valid "
            f"variant already has {smallest.flops:,} FLOPs and {smallest.params:,} params."
        )
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        if fits(at(mid)):
            lo = mid
        else:
            hi = mid
        if hi / lo < 1 + 1e-6:
            break
    best = at(lo)
    return _refine(best, fits, vary)


def _refine(spec: ModelSpec, fits, vary: Vary) -> ModelSpec:
    """Greedy: give each stage at most one more width (or depth) step while the budget allows."""
    widths, depths = list(spec.widths), list(spec.depths)
    stages = (None, *spec.stages)
    moves: list[tuple[str, int]] = []
    if vary in ("widths", "both"):
        moves += [("width", i) for i in range(len(widths))]
    if vary in ("depths", "both"):
        moves += [("depth", i) for i in range(1, len(depths))]
    used: set[tuple[str, int]] = set()
    current = spec
    while True:
        best: tuple[int, tuple[str, int], ModelSpec] | None = None
        for move in moves:
            if move in used:
                continue
            kind, i = move
            w, d = list(widths), list(depths)
            if kind == "width":
                w[i] += width_quantum(stages[i])
            else:
                d[i] += 1
            candidate = _with(spec, w, d)
            if fits(candidate):
                flops = estimate_cost(candidate).flops
                if best is None or flops > best[0]:
                    best = (flops, move, candidate)
        if best is None:
            return current
        _, move, current = best
        used.add(move)
        widths, depths = list(current.widths), list(current.depths)


def binding_limit(spec: ModelSpec, flops: int | None, params: int | None) -> str:
    """Which budget stopped the fit: ``"flops"`` or ``"params"`` (the one used most fully).

    With both given, the scaled spec sits just under one of them and well under the other; a
    report titled by the FLOPs budget when the params cap bound it misleads.
    """
    cost = estimate_cost(spec)
    shares = {
        name: used / limit
        for name, used, limit in (("flops", cost.flops, flops), ("params", cost.params, params))
        if limit
    }
    if not shares:
        raise BudgetError("binding_limit needs a FLOPs budget, a params budget, or both.")
    return max(shares, key=shares.__getitem__)


def shrink_spec(
    spec: ModelSpec,
    width_mult: float = 1.0,
    depth_mult: float = 1.0,
    image_size: int | str | Sequence[int] | None = None,
) -> ModelSpec:
    """A proxy of ``spec``: widths and stage depths scaled, at ``image_size`` (None: its own)."""
    from pydantic import ValidationError

    from coatnet_nas.spec import validation_reason
    from coatnet_nas.units import parse_image_size

    check_multiplier("width_mult", width_mult)
    check_multiplier("depth_mult", depth_mult)
    spec = scale_spec(spec, width_mult, depth_mult)
    if image_size is None:
        return spec
    if isinstance(image_size, (int, str)):
        size = parse_image_size(image_size)
    else:
        size = (int(image_size[0]), int(image_size[-1]))
    try:
        return spec.with_image_size(size)
    except ValidationError as exc:
        h, w = size  # type: ignore[misc]
        raise CoatnetError(
            f"image_size {h}x{w}: {validation_reason(exc)}", param="image_size"
        ) from None


def check_multiplier(name: str, value: float) -> float:
    """A width or depth multiplier must be positive (``name``: the caller's parameter)."""
    if not value > 0:
        raise BudgetError(f"{name}: multipliers must be positive, got {value:g}.", param=name)
    return value
