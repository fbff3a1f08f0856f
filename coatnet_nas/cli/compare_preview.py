"""``coatnet compare --proxy``: the flags a preview refuses, and running and showing one.

A preview scores each layout's fitted candidate with a proxy instead of training it
(:mod:`coatnet_nas.compare.preview`), so the flags that only configure training, data regimes
or capacity runs are refused beside ``--proxy`` in one paragraph naming both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from coatnet_nas.cli import compare_view
from coatnet_nas.cli.app import print_json
from coatnet_nas.errors import CoatnetError
from coatnet_nas.train.recipe import TrainRecipe

EXIT_RUNS_FAILED = 1  # compare's exit status when some runs (here: candidates) failed
# Flags that configure training, which a proxy preview does not do, and why each does not apply.
_REGIMES_WHY = "the proxy scores every layout on its own data split, with no data regimes"
_TRAINING_ONLY = {
    **dict.fromkeys(("regimes", "val_fraction", "holdout", "data_seed"), _REGIMES_WHY),
    "capacity": "capacity is measured by training each layout to a plateau",
    "workers": "the candidates are scored in this process, in seconds each",
    "tensorboard": "nothing is trained, so there are no training curves",
}
_TRAIN_WHY = "nothing is trained here; a training proxy takes its settings in the proxy string"
_DATA_WHY = "a supernet scores every candidate on the data it was trained on"


def checked_proxy(ctx: typer.Context, text: str | None) -> Any:
    """The ``--proxy`` (None: train as usual), refused beside flags that only configure training."""
    from coatnet_nas.proxies import parse_proxy

    if text is None:
        return None
    proxy = parse_proxy(text, param="proxy")
    _refuse_training_flags(ctx, proxy.is_supernet)
    return proxy


def preview(
    ctx: typer.Context,
    config: Any,
    proxy: Any,
    out_dir: Path | None,
    quiet: bool,
    default_name: Callable[[Any], str],
) -> None:
    """``compare --proxy``: score the layouts' candidates, show or print the ranking
    (``default_name``: the command's folder name for a comparison, here given the proxy)."""
    from coatnet_nas.compare.preview import preview_compare

    tag = Path(str(proxy.get("path"))).stem if proxy.is_supernet else proxy.label
    out = out_dir or Path("runs") / default_name(
        dataclasses.replace(config, dataset=f"proxy-{tag}")
    )
    lines = None if quiet else compare_view.PreviewLines(len(config.layouts))
    result = preview_compare(
        config,
        proxy,
        out,
        device=ctx.params["device"],
        threads=ctx.params["threads"],
        on_record=lines,
    )
    if quiet:
        print_json(result.to_dict())
    else:
        compare_view.preview_report(result)
    if result.errors:
        raise typer.Exit(EXIT_RUNS_FAILED)


def _refuse_training_flags(ctx: typer.Context, supernet: bool) -> None:
    """One paragraph naming --proxy and the first given flag that only means something when
    the layouts are trained (``--no-capacity`` agrees with a preview and passes)."""
    from coatnet_nas.cli.errors import flag_for

    why = {k: _TRAIN_WHY for k in (*TrainRecipe.model_fields, "train_eval_images")}
    why |= {k: _TRAINING_ONLY["capacity"] for k in ctx.params if k.startswith("capacity")}
    why |= _TRAINING_ONLY | ({"dataset": _DATA_WHY, "data_dir": _DATA_WHY} if supernet else {})
    for name, reason in why.items():
        source = ctx.get_parameter_source(name)  # typer's own click: compare by name
        given = source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")
        if given and not (name == "capacity" and ctx.params[name] is False):
            flag = flag_for(name, ctx.command)
            raise CoatnetError(
                f"--proxy cannot be combined with {flag}: {reason}. Drop {flag} to preview the "
                f"layouts with the proxy, or drop --proxy to train them."
            )
