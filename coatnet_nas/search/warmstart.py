"""Warm start: known architectures (``specs/coatnet0.yaml``) as the first trials of a search.

A spec becomes the search space's parameters (the inverse of ``SearchSpace.sample``), checked by
sampling them back through a :class:`optuna.trial.FixedTrial`: the architecture must come out the
same, or the error names the first field that the space cannot express. The study gets them as
enqueued trials (``yardstick`` user attribute), so they are scored like any other candidate and
stand in the leaderboard as a yardstick. With a promotion ladder a yardstick is a baseline: it
goes through every rung, so the search's winner is compared with it at equal fidelity.
:func:`fitted_baseline` makes one from a paper preset fitted to the search's budget.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna

from coatnet_nas.errors import CoatnetError
from coatnet_nas.registry import block_type
from coatnet_nas.search.space import SearchSpace
from coatnet_nas.spec import ModelSpec, load_spec

__all__ = ["enqueue_yardsticks", "fitted_baseline", "yardstick_params"]

BASELINES = {"coatnet0": "CoAtNet-0"}  # presets a search can fit to its budget as a baseline


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


def enqueue_yardsticks(
    study: optuna.Study, config: Any, yardsticks: list[tuple[str, dict]]
) -> None:
    """Queue each yardstick once per study (rung 0, seed 0; the ladder queues the rest).

    Without a ladder an architecture the study already holds is not queued again; with one, a
    baseline is queued unless a trial with its label and parameters exists (an earlier unlabeled
    evaluation of it is then reused by the dedupe, not retrained).
    """
    if not config.ladder:
        for label, params in yardsticks:
            study.enqueue_trial(params, user_attrs={"yardstick": label}, skip_if_exists=True)
        return
    from coatnet_nas.search.promotion import params_of

    known = {
        (t.user_attrs.get("yardstick"), json.dumps(params_of(t), sort_keys=True, default=str))
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get("yardstick")
    }
    for label, params in yardsticks:
        if (label, json.dumps(params, sort_keys=True, default=str)) not in known:
            attrs = {"yardstick": label, "rung": 0, "seed": 0}
            study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=False)


def fitted_baseline(
    name: str, space: SearchSpace, flops: int | None, params: int | None
) -> ModelSpec:
    """The paper's ``name`` (``coatnet0``) at the space's target size, fitted to the budget.

    Each of :func:`~coatnet_nas.scaling.fit_to_budget`'s ways (depths, widths, both) is tried;
    the largest fit the space can express wins (fitting by depths keeps the paper's widths).
    """
    from coatnet_nas.presets import load_preset
    from coatnet_nas.scaling import fit_to_budget
    from coatnet_nas.units import human

    if name not in BASELINES:
        raise CoatnetError(
            f"baseline {name!r}: known baselines are {', '.join(BASELINES)}.", param="baseline"
        )
    target = space.target
    spec = load_preset(name).evolve(
        image_size=target.image_size, num_classes=target.num_classes, in_chans=target.in_chans
    )
    budget = " and ".join(
        f"{human(v, 1)} {what}" for v, what in ((flops, "FLOPs"), (params, "params")) if v
    )
    label = f"{BASELINES[name]} (fitted to {budget})"
    fits = []
    for vary in ("depths", "widths", "both"):
        fitted = fit_to_budget(spec, flops=flops, params=params, vary=vary).evolve(name=label)
        try:
            yardstick_params(space, fitted)
        except CoatnetError:
            continue
        fits.append(fitted)
    if not fits:
        raise CoatnetError(
            f"baseline {name}: no fit of {BASELINES[name]} to {budget} lies in the search space "
            f"{space.name!r} (its depths or widths fall outside the space's ranges).",
            param="baseline",
        )
    from coatnet_nas.cost import estimate_cost

    return max(fits, key=lambda s: estimate_cost(s).flops)
