"""Readable user attributes every trial carries, for people looking at a study (optuna-dashboard,
``coatnet report``): the architecture, its size and the proxy that scored it, as short text.

The machine-readable attributes (``spec``, ``layout``, ``depths``, ``widths``, ``params``,
``flops``, ``latency_ms``, ``status``) are set by the objective; these sit beside them.
"""

from __future__ import annotations

from typing import Any

from coatnet_nas.units import human

__all__ = ["readable_attrs", "recipe_label"]


def recipe_label(recipe: Any) -> str:
    """``train fashion-mnist@32px subset 0.2, width x0.25, 1 epoch(s), batch 128, lr 0.002``."""
    train = recipe.train
    budget = ", ".join(
        f"{value:g} {name}"
        for name, value in (
            ("epoch(s)", train.epochs),
            ("step(s)", train.steps),
            ("s", train.seconds),
        )
        if value is not None
    )
    shrink = f"width x{recipe.width_mult:g}" + (
        f" depth x{recipe.depth_mult:g}" if recipe.depth_mult != 1 else ""
    )
    return (
        f"train {recipe.dataset}@{recipe.image_size}px subset {recipe.subset:g}, {shrink}, "
        f"{budget}, batch {train.batch_size}, lr {train.lr:g}"
    )


def readable_attrs(spec: Any, cost: Any, config: Any, latency_ms: float | None) -> dict[str, str]:
    """``arch``, ``size`` and ``proxy_recipe`` of one trial, as text."""
    arch = (
        f"{spec.layout} depths {'-'.join(map(str, spec.depths))} "
        f"widths {'-'.join(map(str, spec.widths))} @{spec.image_size[0]}px"
    )
    size = f"{human(cost.params)} params, {human(cost.flops)} FLOPs"
    if latency_ms is not None:
        size += f", {latency_ms:.2f} ms predicted"
    proxy = config.proxy if config.training_free else recipe_label(config.space.proxy)
    return {"arch": arch, "size": size, "proxy_recipe": proxy}
