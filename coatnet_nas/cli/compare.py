"""``coatnet compare``: the CoAtNet paper's layout study (generalization vs capacity), any data.

Training options default to None and only the ones a user sets are applied to the library's
:data:`~coatnet_nas.compare.DEFAULT_TRAIN`, so every default lives in the recipe and the help
text reads it from there.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from coatnet_nas.cli import compare_view
from coatnet_nas.cli.app import (
    DATA,
    OPTIMISATION,
    OUTPUT,
    RUNTIME,
    SHRINK,
    app,
    console,
    parse_image_size,
    print_json,
)
from coatnet_nas.cli.compare_preview import EXIT_RUNS_FAILED, checked_proxy, preview
from coatnet_nas.cli.options import (
    BatchSize,
    Budget,
    DataDir,
    Dataset,
    Device,
    LabelSmoothing,
    LearningRate,
    Warmup,
    WeightDecay,
    choice,
)
from coatnet_nas.cli.options import Holdout as HoldoutOption
from coatnet_nas.compare.capacity import CapacityOptions
from coatnet_nas.compare.config import (
    DEFAULT_LAYOUTS,
    DEFAULT_TRAIN,
    DEFAULT_TRAIN_EVAL_IMAGES,
    Holdout,
    Vary,
)
from coatnet_nas.errors import CoatnetError
from coatnet_nas.presets import preset_path
from coatnet_nas.train.recipe import TrainRecipe
from coatnet_nas.units import human, parse_flops

DEFAULT_BASE = preset_path("coatnet0")  # bundled package data, found wherever the package is
D = DEFAULT_TRAIN
CAP = CapacityOptions()
CAPACITY = "Capacity (trained to a plateau)"
PREVIEW = "Preview (scored by a proxy, not trained)"


def _opt(flag: str, panel: str, help: str, metavar: str | None = None) -> Any:
    """An option defaulting to None whose help states the default actually taken."""
    return typer.Option(
        None, flag, help=help, metavar=metavar, show_default=False, rich_help_panel=panel
    )


VaryOpt = Annotated[
    Vary,
    typer.Option(
        "--vary", rich_help_panel=SHRINK, help="What budget fitting scales.", **choice(Vary, "vary")
    ),
]


@app.command()
def compare(
    ctx: typer.Context,
    layouts: str = typer.Option(
        ",".join(DEFAULT_LAYOUTS),
        "--layouts",
        "-l",
        rich_help_panel=SHRINK,
        metavar="LAYOUTS",
        help="Comma-separated layout words: stage letters like C-C-T-T, or ViT (the paper's "
        "ViT_REL: patch stem + one T stage; ViT/8 fixes its total stride).",
    ),
    base_path: Path | None = typer.Option(
        None,
        "--base",
        rich_help_panel=SHRINK,
        metavar="PATH",
        help="Base spec YAML the layouts are built from (default: CoAtNet-0).",
    ),
    flops: Budget = None,
    vary: VaryOpt = Vary.WIDTHS,
    depth_mult: float = typer.Option(
        1.0,
        "--depth-mult",
        rich_help_panel=SHRINK,
        metavar="FACTOR",
        help="Scale the base's stage depths first (CPU proxies).",
    ),
    dataset: Dataset = "synthetic",
    data_dir: DataDir = None,
    image_size: str | None = typer.Option(
        None,
        "--image-size",
        rich_help_panel=SHRINK,
        metavar="SIZE",
        help="Training resolution, e.g. 32 or 32x48 (default: the data's native size rounded "
        "up to a multiple of the base's total stride; image folders: the base spec's).",
    ),
    regimes: str = typer.Option(
        "small=0.1,full=1.0",
        "--regimes",
        rich_help_panel=DATA,
        metavar="NAME=FRACTION,...",
        help="Data regimes as fractions of the training data; generalization is read in the "
        "smallest, capacity in the largest.",
    ),
    val_fraction: float = typer.Option(
        0.1,
        "--val-fraction",
        rich_help_panel=DATA,
        metavar="FRACTION",
        help="Held-out fraction shared by all regimes.",
    ),
    holdout: HoldoutOption = Holdout.SPLIT,
    data_seed: int = typer.Option(
        0,
        "--data-seed",
        rich_help_panel=DATA,
        metavar="N",
        help="Seed of the data split: the validation set and the regime subsets.",
    ),
    epochs: float | None = _opt(
        "--epochs",
        OPTIMISATION,
        f"Epochs per run in every regime (default {D.epochs:g} unless --steps is given).",
        "EPOCHS",
    ),
    steps: int | None = _opt(
        "--steps",
        OPTIMISATION,
        "Steps per run in every regime: equal compute, so small regimes make more "
        "passes over less data (with --epochs, the first reached ends a run).",
        "N",
    ),
    seeds: int = typer.Option(
        3,
        "--seeds",
        rich_help_panel=OPTIMISATION,
        metavar="N",
        help="How many seeds per (layout, regime): runs seeds 0..N-1 (model init, batch order).",
    ),
    batch_size: BatchSize = None,
    lr: LearningRate = None,
    weight_decay: WeightDecay = None,
    warmup: Warmup = None,
    label_smoothing: LabelSmoothing = None,
    drop_path_rate: float | None = _opt(
        "--drop-path",
        OPTIMISATION,
        f"Stochastic depth for every run (default {D.drop_path_rate:g}).",
        "RATE",
    ),
    augment: bool | None = _opt(
        "--augment/--no-augment", OPTIMISATION, "Random flips of training batches (default on)."
    ),
    train_eval_images: int | None = _opt(
        "--train-eval-images",
        OPTIMISATION,
        f"Training images the clean final train loss uses (default {DEFAULT_TRAIN_EVAL_IMAGES}).",
        "N",
    ),
    capacity: bool = typer.Option(
        True,
        "--capacity/--no-capacity",
        rich_help_panel=CAPACITY,
        help="Also measure capacity: each layout and seed trained to a plateau on a fixed set, "
        "at a size where every T stage sees >= 4x4 tokens (--no-capacity: fitting speed only).",
    ),
    capacity_images: int | None = _opt(
        "--capacity-images",
        CAPACITY,
        f"Size of the fixed training set, drawn from the largest regime (default {CAP.images}).",
        "N",
    ),
    capacity_steps: int | None = _opt(
        "--capacity-steps",
        CAPACITY,
        f"Step cap of a capacity run, reached if no plateau comes first (default {CAP.steps}).",
        "N",
    ),
    capacity_batch_size: int | None = _opt(
        "--capacity-batch-size",
        CAPACITY,
        f"Batch size of capacity runs (constant learning rate {CAP.lr:g}; default "
        f"{CAP.batch_size}).",
        "N",
    ),
    capacity_eval_every: int | None = _opt(
        "--capacity-eval-every",
        CAPACITY,
        f"Steps between clean-loss evaluations on the fixed set (default {CAP.eval_every}).",
        "N",
    ),
    capacity_patience: int | None = _opt(
        "--capacity-patience",
        CAPACITY,
        f"Plateau: this many evaluations without improving the best before them by "
        f"--capacity-min-delta (default {CAP.patience}).",
        "N",
    ),
    capacity_min_delta: float | None = _opt(
        "--capacity-min-delta",
        CAPACITY,
        f"Plateau: the relative loss improvement that still counts (default {CAP.min_delta:g}).",
        "FRACTION",
    ),
    proxy: str | None = typer.Option(
        None,
        "--proxy",
        rich_help_panel=PREVIEW,
        metavar="PROXY",
        help="Score each layout's fitted candidate with this proxy instead of training it: "
        "supernet:SUPER.pt (inherited weights, seconds per layout), a training-free score or "
        "train:... as in proxy-check. Ranks the layouts by the score beside the paper's "
        "generalization ranking; fitting speed and capacity are not measured.",
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        rich_help_panel=RUNTIME,
        metavar="N",
        help="Parallel runs (spawned processes).",
    ),
    threads: int | None = _opt(
        "--threads", RUNTIME, "CPU threads per run (default: cores / workers).", "N"
    ),
    device: Device = "auto",
    out_dir: Path | None = typer.Option(
        None,
        "--out",
        rich_help_panel=OUTPUT,
        metavar="PATH",
        help="Results folder (default runs/compare-<base>-<data>-<size>-<budget>).",
    ),
    fresh: bool = typer.Option(
        False, "--fresh", rich_help_panel=OUTPUT, help="Discard runs stored in --out first."
    ),
    tensorboard: Path | None = typer.Option(
        None,
        "--tensorboard",
        metavar="DIR",
        help="Write TensorBoard event files per run (DIR/<layout>_<regime>_seed=N).",
        rich_help_panel=OUTPUT,
    ),
    json_out: bool = typer.Option(
        False, "--json", rich_help_panel=OUTPUT, help="Print one JSON summary, no tables."
    ),
) -> None:
    """Train layouts at one FLOPs budget in a small and a large data regime, and rank them.

    Generalization (val accuracy with scarce data), fitting speed (train loss after the fixed
    budget with plentiful data) and capacity (the lowest train loss when trained to a plateau)
    are ranked next to the CoAtNet paper's rankings. Re-running the same command resumes where
    it stopped. --proxy previews the ranking: each layout's candidate is scored, not trained.

    Exit status: 0 when every run finished, 1 when some runs failed (rerun to retry them),
    2 for bad input.
    """
    from coatnet_nas.compare import CompareConfig, CompareRecipe, parse_regimes
    from coatnet_nas.compare.report import summarize, write_outputs
    from coatnet_nas.spec import load_spec

    if base_path is None and not DEFAULT_BASE.exists():
        raise CoatnetError(f"--base: the default {DEFAULT_BASE} is missing; pass a spec file.")
    base = load_spec(base_path or DEFAULT_BASE)
    scored_by = checked_proxy(ctx, proxy)  # parsed and checked before any training option is read
    given = {k: v for k, v in ctx.params.items() if k in TrainRecipe.model_fields}
    changes = {k: v for k, v in given.items() if v is not None}
    if steps is not None and epochs is None:
        changes["epochs"] = None  # a step budget alone: equal compute in every regime
    train = D.evolve(**changes) if changes else D
    images = DEFAULT_TRAIN_EVAL_IMAGES if train_eval_images is None else train_eval_images
    recipe = CompareRecipe(train, images)
    flops = parse_flops(flops, what="flops") if flops is not None else None
    config = CompareConfig(
        base=base,
        layouts=tuple(w.strip() for w in layouts.split(",") if w.strip()),
        flops=flops,
        vary=vary,
        depth_mult=depth_mult,
        dataset=dataset,
        data_dir=str(data_dir) if data_dir is not None else None,
        image_size=parse_image_size(image_size),
        val_fraction=val_fraction,
        holdout=holdout,
        data_seed=data_seed,
        regimes=parse_regimes(regimes),
        seeds=tuple(range(seeds)),
        recipe=recipe,
        capacity=_capacity_options(ctx.params),
    )
    config.validate()  # cheap checks before the data is read for its size
    if scored_by is not None:
        return preview(ctx, config, scored_by, out_dir, json_out, default_name)
    if config.image_size is None:
        config = _natural_size(config, quiet=json_out)
    out_dir = out_dir or Path("runs") / default_name(config)
    run = dict(workers=workers, device=device, threads=threads, fresh=fresh)
    result = _run_shown(config, out_dir, run, quiet=json_out, tensorboard=tensorboard)
    summary = summarize(result)
    write_outputs(summary)
    if json_out:
        print_json(summary.to_dict())
    else:
        compare_view.report(summary)
    if result.errors:
        raise typer.Exit(EXIT_RUNS_FAILED)


def _capacity_options(params: dict[str, Any]) -> CapacityOptions:
    """The ``--capacity-*`` flags that were given, over the library's defaults."""
    given = {k.removeprefix("capacity_"): v for k, v in params.items() if k.startswith("capacity_")}
    return CapacityOptions(
        enabled=params["capacity"], **{k: v for k, v in given.items() if v is not None}
    )


def _run_shown(config: Any, out_dir: Path, run: dict, quiet: bool, tensorboard: Any) -> Any:
    """:func:`run_compare` with live progress (unless ``quiet``) and TensorBoard folders."""
    from coatnet_nas.compare import run_compare

    display = None if quiet else compare_view.Display() if console.is_terminal else None
    display = display or (None if quiet else compare_view.Lines())
    try:
        on_event = _with_tensorboard(display.event if display else None, tensorboard)
        return run_compare(config, out_dir, on_event=on_event, **run)
    finally:
        if display is not None:
            display.stop()


def _with_tensorboard(on_event: Any, folder: Path | None) -> Any:
    """``on_event`` that also writes each run's progress to its own TensorBoard folder."""
    if folder is None:
        return on_event
    from coatnet_nas.train.tensorboard import TensorBoardRuns

    runs = TensorBoardRuns(folder)

    def both(event: Any) -> None:
        if event.job is not None and event.kind == "progress" and event.info is not None:
            runs.write(event.job.key, event.info)
        elif event.job is not None and event.kind in ("done", "error"):
            runs.finish(event.job.key)
        if on_event is not None:
            on_event(event)

    return both


def _natural_size(config: Any, quiet: bool) -> Any:
    """``config`` at the data's own size (one line says which and why, unless ``quiet``)."""
    from coatnet_nas.compare import natural_image_size

    choice = natural_image_size(config.base, config.dataset, config.data_dir)
    if not quiet:
        console.print(f"{choice.reason()} (--image-size overrides)", markup=False)
    return dataclasses.replace(config, image_size=choice.size)


def default_name(config: Any) -> str:
    """``compare-coatnet-0-fashion-mnist-32px-5.00M`` (budget ``base`` when not given)."""
    h, w = config.train_size
    size = f"{h}px" if h == w else f"{h}x{w}px"
    budget = human(config.flops) if config.flops else "base"
    data = re.sub(r"[^A-Za-z0-9.]+", "-", config.dataset.split("/")[-1]).strip("-")
    return f"compare-{config.base.name}-{data}-{size}-{budget}"
