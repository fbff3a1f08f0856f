"""``coatnet train SPEC``: a budgeted proxy training run with a progress bar or JSON output.

The command turns its flags into library values (a shrunk spec, :class:`DataOptions`,
:class:`TrainRecipe`, :class:`Runtime`, :class:`Saving`, one :class:`TrainJob`) and renders
what the job returns; every check lives in those values.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated

import typer

from coatnet_nas import signals
from coatnet_nas.cli import train_launch, train_view
from coatnet_nas.cli.app import DATA, OPTIMISATION, OUTPUT, RUNTIME, app, print_json
from coatnet_nas.cli.options import (
    Amp,
    BatchSize,
    DataDir,
    Dataset,
    DepthMult,
    Device,
    Holdout,
    ImageSize,
    Json,
    LabelSmoothing,
    LearningRate,
    MemoryCap,
    Nproc,
    Threads,
    ValFraction,
    Warmup,
    WeightDecay,
    WidthMult,
    choice,
)
from coatnet_nas.cli.train_launch import EXIT_DIVERGED
from coatnet_nas.data.options import AutoAugment, DataOptions
from coatnet_nas.data.options import Holdout as HoldoutChoice
from coatnet_nas.errors import CoatnetError
from coatnet_nas.train.recipe import AmpMode, TrainRecipe

_DEFAULT = TrainRecipe()  # the trainer's defaults: options left unset keep these


def _opt(flag: str, panel: str, help: str, metavar: str | None = None, **kw) -> typer.Option:
    return typer.Option(flag, help=help, metavar=metavar, rich_help_panel=panel, **kw)


Subset = Annotated[float, _opt("--subset", DATA, "Seeded fraction of the data, in (0, 1].")]
CropPadding = Annotated[
    int, _opt("--crop-padding", DATA, "Random-crop padding in pixels (0: flips only).", "PX")
]
Stream = Annotated[
    bool,
    _opt(
        "--stream",
        DATA,
        "folder:PATH only: decode files in loader workers on every step "
        "(full resolution, e.g. 224) instead of a prepared cache; augmented on the device.",
    ),
]
LoaderWorkers = Annotated[
    int, _opt("--loader-workers", DATA, "With --stream: decoding processes (0: inline).", "K")
]
AutoAugmentOpt = Annotated[
    AutoAugment,
    _opt(
        "--auto-augment",
        DATA,
        "With --stream: trivial (TrivialAugment), rand (RandAugment "
        "n=2 m=9) or none; random-resized crop and flip always.",
        **choice(AutoAugment, "auto_augment"),
    ),
]
Mixup = Annotated[float, _opt("--mixup", DATA, "With --stream: mixup, lambda in (0, MAX).", "MAX")]
Cutmix = Annotated[float, _opt("--cutmix", DATA, "With --stream: cutmix probability.", "P")]
Epochs = Annotated[
    float | None,
    _opt("--epochs", OPTIMISATION, f"Epoch budget (default {_DEFAULT.epochs:g}).", "N"),
]
Steps = Annotated[int | None, _opt("--steps", OPTIMISATION, "Step budget.", "N")]
Seconds = Annotated[
    float | None, _opt("--seconds", OPTIMISATION, "Wall-time budget, evaluations included.", "S")
]
GradClip = Annotated[
    float | None,
    _opt(
        "--grad-clip",
        OPTIMISATION,
        f"Max gradient norm, 0 disables (default {_DEFAULT.grad_clip:g}).",
        "NORM",
    ),
]
Augment = Annotated[
    bool | None,
    _opt(
        "--augment/--no-augment",
        OPTIMISATION,
        "Random crop + flip (default on).",
        show_default=False,
    ),
]
DropPath = Annotated[
    float | None, _opt("--drop-path", OPTIMISATION, "Override the spec's stochastic depth.", "R")
]
EvalEvery = Annotated[
    int | None, _opt("--eval-every", OPTIMISATION, "Evaluate every N steps (default: epochs).", "N")
]
PreciseBn = Annotated[
    int | None,
    _opt(
        "--precise-bn",
        OPTIMISATION,
        f"Batches to recompute BatchNorm stats on before each "
        f"eval, 0: off (default {_DEFAULT.precise_bn}).",
        "N",
    ),
]
Ema = Annotated[
    float | None, _opt("--ema", OPTIMISATION, "Also keep and evaluate an EMA of the weights.", "D")
]
ChannelsLast = Annotated[
    bool, _opt("--channels-last/--no-channels-last", RUNTIME, "NHWC memory format.")
]
Compile = Annotated[bool, _opt("--compile", RUNTIME, "torch.compile the model.")]
Seed = Annotated[int, _opt("--seed", RUNTIME, "Seed of data split, init and order.", "N")]
SyncBn = Annotated[
    bool, _opt("--sync-batchnorm", RUNTIME, "BatchNorm statistics over the global batch (CUDA).")
]
Save = Annotated[
    Path | None,
    _opt(
        "--save",
        OUTPUT,
        "Checkpoint the run (each epoch, every --save-every minutes, at the end).",
        "PATH",
    ),
]
SaveEvery = Annotated[
    float, _opt("--save-every", OUTPUT, "Minutes between checkpoints (0: every step).", "MIN")
]
Resume = Annotated[
    Path | None,
    _opt(
        "--resume",
        OUTPUT,
        "Continue the run saved there (same options); 'auto': continue from --save when that "
        "file exists, else start fresh (the one command line a requeued job repeats).",
        "PATH",
    ),
]
Init = Annotated[
    Path | None,
    _opt(
        "--init", OUTPUT, "Start from these weights (e.g. a 224 model fine-tuned at 384).", "PATH"
    ),
]
Tensorboard = Annotated[
    Path | None,
    _opt(
        "--tensorboard",
        OUTPUT,
        "Write TensorBoard event files (loss, accuracy, learning "
        "rate, images/s, the model graph) into this folder.",
        "DIR",
    ),
]


@app.command()
def train(
    ctx: typer.Context,
    spec_path: str = typer.Argument(
        ..., metavar="SPEC", help="Model spec YAML, or a bundled preset name such as coatnet0."
    ),
    dataset: Dataset = "synthetic",
    data_dir: DataDir = None,
    subset: Subset = 1.0,
    val_fraction: ValFraction = 0.1,
    holdout: Holdout = HoldoutChoice.SPLIT,
    crop_padding: CropPadding = 0,
    memory_cap: MemoryCap = None,
    stream: Stream = False,
    loader_workers: LoaderWorkers = 2,
    auto_augment: AutoAugmentOpt = AutoAugment.TRIVIAL,
    mixup: Mixup = 0.0,
    cutmix: Cutmix = 0.0,
    image_size: ImageSize = None,
    width_mult: WidthMult = 1.0,
    depth_mult: DepthMult = 1.0,
    epochs: Epochs = None,
    steps: Steps = None,
    seconds: Seconds = None,
    batch_size: BatchSize = None,
    lr: LearningRate = None,
    weight_decay: WeightDecay = None,
    warmup: Warmup = None,
    label_smoothing: LabelSmoothing = None,
    grad_clip: GradClip = None,
    augment: Augment = None,
    drop_path_rate: DropPath = None,
    eval_every: EvalEvery = None,
    precise_bn: PreciseBn = None,
    ema: Ema = None,
    device: Device = "auto",
    amp: Amp = AmpMode.AUTO,
    channels_last: ChannelsLast = True,
    compile: Compile = False,
    threads: Threads = None,
    sync_batchnorm: SyncBn = False,
    seed: Seed = 0,
    nproc: Nproc = 1,
    save: Save = None,
    save_every: SaveEvery = 10.0,
    resume: Resume = None,
    init: Init = None,
    tensorboard: Tensorboard = None,
    json_out: Json = False,
) -> None:
    """Train a proxy of SPEC on a dataset within a budget and report its accuracy.

    --batch-size is the global batch: --nproc N (or torchrun) gives each process 1/N of it.
    Exit status: 0 when the run finished (ok, budget or stopped), 1 diverged, 2 bad input.
    """
    from coatnet_nas.presets import resolve_spec
    from coatnet_nas.scaling import shrink_spec
    from coatnet_nas.train import Runtime
    from coatnet_nas.train.distributed import distributed_session, env_world_size
    from coatnet_nas.train.job import Saving, TrainJob

    given = {k: v for k, v in ctx.params.items() if k in TrainRecipe.model_fields}
    changes = {k: v for k, v in given.items() if v is not None}
    if grad_clip == 0:
        changes["grad_clip"] = None
    if epochs is None and (steps is not None or seconds is not None):
        changes["epochs"] = None  # only the budgets given
    recipe = _DEFAULT.evolve(**changes)
    runtime = Runtime(device, amp, channels_last, compile, threads, sync_batchnorm)
    data = _fields_of(DataOptions, ctx.params)
    saving = Saving(save, save_every, _auto_resume(resume, save), init)
    spec = shrink_spec(resolve_spec(spec_path), width_mult, depth_mult, image_size)
    job = TrainJob(spec, data, recipe, runtime, seed, saving, nproc)
    if nproc > 1 and env_world_size() == 1:  # this process launches the ranks
        return train_launch.launch(ctx, nproc, runtime.device)
    with distributed_session(runtime.device) as (world, placed):
        try:
            shrink = {"width_mult": width_mult, "depth_mult": depth_mult}
            _run(job, replace(runtime, device=placed), world, json_out, tensorboard, shrink)
        except CoatnetError as exc:
            if world.main:
                raise
            raise typer.Exit(exc.exit_code) from None  # rank 0 says it once


def _fields_of(kind: type, params: dict):  # type: ignore[no-untyped-def]
    """``kind`` built from the command's parameters of the same names."""
    from dataclasses import fields

    return kind(**{f.name: params[f.name] for f in fields(kind) if f.name in params})


def _run(job, runtime, world, json_out: bool, tensorboard: Path | None, shrink: dict) -> None:  # type: ignore[no-untyped-def]
    """Train on this rank and (rank 0) report."""
    quiet = json_out or not world.main
    writer = _tensorboard(tensorboard, world.main)

    def on_start(spec, data, model) -> None:  # type: ignore[no-untyped-def]
        if writer is not None:
            writer.start(model, data)
        if not quiet:
            train_view.header(spec, data, job.recipe, model, world.size)

    def run(progress=None):  # type: ignore[no-untyped-def]
        if writer is not None:
            progress = writer.chain(progress)
        return job.run(runtime=runtime, progress=progress, on_start=on_start)

    try:  # SIGTERM (preemption), Ctrl-C and SLURM's SIGUSR1 act between steps, saving the run
        with signals.deferred():
            outcome = run() if quiet else train_view.with_progress(run)
    except KeyboardInterrupt as exc:  # a stop signal: the loop saved the run (when --save)
        if world.main:
            train_view.stopped(exc)
        raise typer.Exit(getattr(exc, "exit_code", 130)) from None
    finally:
        if writer is not None:
            writer.close()
    result = outcome.result
    if not world.main:
        raise typer.Exit(EXIT_DIVERGED if result.status == "diverged" else 0)
    if json_out:
        print_json(_json(job, outcome, runtime, shrink))
    else:
        train_view.summary(result, outcome.checkpoint)
    if result.status == "diverged":
        raise typer.Exit(EXIT_DIVERGED)


def _auto_resume(resume: Path | None, save: Path | None) -> Path | None:
    """``--resume auto``: the ``--save`` file when it exists (a requeued job), else a fresh run."""
    if resume is None or str(resume) != "auto":
        return resume
    if save is None:
        raise CoatnetError(
            "resume auto continues the run saved at the save path; give save PATH too "
            "(e.g. --save run.pt --resume auto).",
            param="resume",
        )
    return save if save.is_file() else None


def _tensorboard(folder: Path | None, main: bool):  # type: ignore[no-untyped-def]
    if folder is None or not main:
        return None
    from coatnet_nas.train.tensorboard import TensorBoardLog

    return TensorBoardLog(folder)


def _json(job, outcome, runtime, shrink: dict) -> dict:  # type: ignore[no-untyped-def]
    spec, saving = outcome.model.spec, job.saving
    h, w = spec.image_size
    return {
        **outcome.result.to_dict(),
        "spec": {
            "name": spec.name,
            "layout": spec.layout,
            "depths": list(spec.depths),
            "widths": list(spec.widths),
            "image_size": [h, w],
            **shrink,
        },
        "dataset": outcome.data.describe(),
        "recipe": job.recipe.model_dump(mode="json"),
        "runtime": {**asdict(runtime), "amp": runtime.amp.value, "seed": job.seed},
        "checkpoint": str(outcome.checkpoint) if outcome.checkpoint is not None else None,
        "resumed_from": str(saving.resume) if saving.resume is not None else None,
        "init": str(saving.init) if saving.init is not None else None,
    }
