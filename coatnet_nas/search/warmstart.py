"""Warm start: known architectures (``specs/coatnet0.yaml``) as the first trials of a search.

A spec becomes the search space's parameters (the inverse of ``SearchSpace.sample``), checked by
sampling them back through a :class:`optuna.trial.FixedTrial`: the architecture must come out the
same, or the error names the first field that the space cannot express. The study gets them as
enqueued trials (``yardstick`` user attribute), so they are scored like any other candidate and
stand in the leaderboard as a yardstick.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from coatnet_nas.errors import CoatnetError
from coatnet_nas.registry import block_type
from coatnet_nas.search.space import SearchSpace
from coatnet_nas.spec import ModelSpec, load_spec

__all__ = ["yardstick_params"]


def yardstick_params(space: SearchSpace, spec: ModelSpec | str | Path) -> tuple[str, dict]:
    """``(label, params)`` that make ``space.sample`` draw the architecture of ``spec``."""
    label = str(spec) if not isinstance(spec, ModelSpec) else spec.name
    if not isinstance(spec, ModelSpec):
        spec = load_spec(spec)
    params: dict[str, Any] = {"layout": spec.layout, "depth_s0": spec.stem.depth}
    params["width_s0"] = spec.stem.width
    for i, stage in enumerate(spec.stages, 1):
        params[f"depth_s{i}"] = stage.depth
        params[f"width_s{i}"] = stage.width
        key = block_type(stage.type).key
        for name, choices in space.options.get(key, {}).items():
            value = getattr(stage.options, name)
            # the space's own choice object (4, not 4.0): Optuna stores categoricals by index
            params[f"{key}.{name}"] = next((c for c in choices if c == value), value)
    problem = _first_problem(space, spec, params)
    if problem:
        raise CoatnetError(
            f"enqueue {label}: the search space {space.name!r} cannot express this spec "
            f"({problem}).",
            param="enqueue",
        )
    fixed = optuna.trial.FixedTrial(params)
    space.sample(fixed)
    return label, dict(fixed.params)  # only what the space suggests (one layout: no "layout")


def _first_problem(space: SearchSpace, spec: ModelSpec, params: dict[str, Any]) -> str | None:
    if spec.layout not in space.layout_choices():
        return f"layout {spec.layout}: the space has {', '.join(space.layout_choices())}"
    ranges = [space.stem_depth, *space.depths]
    for i, (depth, (lo, hi)) in enumerate(zip(spec.depths, ranges, strict=True)):
        if not lo <= depth <= hi:
            return f"depths[{i}] {depth}: the space allows {lo}..{hi}"
    for i, (width, choices) in enumerate(zip(spec.widths, space.widths, strict=True)):
        if width not in choices:
            return f"widths[{i}] {width}: the space allows {', '.join(map(str, choices))}"
    for name, value in params.items():
        key, _, option = name.partition(".")
        choices = space.options.get(key, {}).get(option)
        if option and choices is not None and value not in choices:
            return f"{name} {value}: the space allows {', '.join(map(str, choices))}"
    drawn = space.sample(optuna.trial.FixedTrial(params))
    for i, (a, b) in enumerate(zip(drawn.stages, spec.stages, strict=True)):
        mine, theirs = a.options.model_dump(), b.options.model_dump()
        for option in mine:
            if mine[option] != theirs.get(option):
                return f"stages[{i}].{option} {theirs.get(option)}: the space fixes {mine[option]}"
    if drawn.stem.model_dump() != spec.stem.model_dump():
        return f"stem {spec.stem.model_dump()}: the space draws {drawn.stem.model_dump()}"
    return None
