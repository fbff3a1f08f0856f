"""``coatnet train SPEC``: a budgeted proxy training run with a progress bar or JSON output.

(Over ~300 lines: most of it is the one command's Typer option declarations, read together.)
"""

from __future__ import annotations

from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import typer
from pydantic import ValidationError

from coatnet_nas.cli import train_launch, train_view
from coatnet_nas.cli.app import app, parse_image_size, print_json
from coatnet_nas.cli.options import (
    BatchSize,
    DataDir,
    Dataset,
    Device,
    Holdout,
    LabelSmoothing,
    LearningRate,
    MemoryCap,
    Warmup,
    WeightDecay,
    check_memory_cap,
)
from coatnet_nas.cli.train_launch import EXIT_DIVERGED
from coatnet_nas.errors import CoatnetError
from coatnet_nas.train.recipe import TrainRecipe

_DEFAULT = TrainRecipe()  # the trainer's defaults: options left unset keep these


@app.command()
def train(
    ctx: typer.Context,
    spec_path: str = typer.Argument(
        ..., metavar="SPEC", help="Model spec YAML, or a bundled preset name such as coatnet0."
    ),
    dataset: Dataset = "synthetic",
    data_dir: DataDir = None,
    subset: float = typer.Option(
        1.0, "--subset", help="Seeded fraction of the data to use, in (0, 1]."
    ),
    val_fraction: float = typer.Option(
        0.1, "--val-fraction", help="Held-out fraction of the training data."
    ),
    holdout: Holdout = "split",
    epochs: float | None = typer.Option(
        None, "--epochs", help=f"Epoch budget (default {_DEFAULT.epochs:g} if no budget is given)."
    ),
    steps: int | None = typer.Option(None, "--steps", help="Step budget."),
    seconds: float | None = typer.Option(
        None, "--seconds", help="Wall-time budget, evaluations included."
    ),
    image_size: str | None = typer.Option(
        None, "--image-size", help="Proxy resolution, e.g. 32 (default: the spec's)."
    ),
    width_mult: float = typer.Option(
        1.0, "--width-mult", help="Scale every width (rounded to valid values)."
    ),
    depth_mult: float = typer.Option(
        1.0, "--depth-mult", help="Scale stage depths (>= 1 block each)."
    ),
    batch_size: BatchSize = None,
    lr: LearningRate = None,
    weight_decay: WeightDecay = None,
    warmup: Warmup = None,
    label_smoothing: LabelSmoothing = None,
    grad_clip: float | None = typer.Option(
        None, "--grad-clip", help=f"Max gradient norm, 0 disables (default {_DEFAULT.grad_clip:g})."
    ),
    augment: bool | None = typer.Option(
        None, "--augment/--no-augment", help="Random crop + horizontal flip (default on)."
    ),
    crop_padding: int = typer.Option(
        0, "--crop-padding", help="Random-crop padding in pixels (0: flips only; slows short runs)."
    ),
    drop_path: float | None = typer.Option(
        None, "--drop-path", help="Override the spec's stochastic depth."
    ),
    memory_cap: MemoryCap = None,
    stream: bool = typer.Option(
        False,
        "--stream",
        help="folder:PATH only: decode files in loader workers on every step (full resolution, "
        "e.g. 224) instead of a prepared cache; augmentation runs batched on the device.",
    ),
    loader_workers: int = typer.Option(
        2, "--loader-workers", metavar="K", help="With --stream: decoding processes (0: inline)."
    ),
    auto_augment: str = typer.Option(
        "trivial",
        "--auto-augment",
        metavar="POLICY",
        help="With --stream: trivial (TrivialAugment), rand (RandAugment n=2 m=9) or none; "
        "random-resized crop and flip always.",
    ),
    mixup: float = typer.Option(
        0.0, "--mixup", metavar="MAX", help="With --stream: mixup, lambda drawn in (0, MAX)."
    ),
    cutmix: float = typer.Option(
        0.0, "--cutmix", metavar="P", help="With --stream: probability of cutmix per batch."
    ),
    device: Device = "auto",
    amp: str = typer.Option(
        "auto", "--amp", help="auto (bf16/fp16 on CUDA, off on CPU), bf16, fp16, off."
    ),
    channels_last: bool = typer.Option(
        True, "--channels-last/--no-channels-last", help="NHWC memory format (faster on CPU too)."
    ),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the model."),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Seed of data split, init and order."),
    threads: int | None = typer.Option(
        None, "--threads", help="CPU threads (default: torch's; lower it when sharing the CPU)."
    ),
    eval_every: int | None = typer.Option(
        None, "--eval-every", help="Evaluate every N steps (default: each epoch)."
    ),
    precise_bn: int | None = typer.Option(
        None,
        "--precise-bn",
        metavar="N",
        help=f"Batches to recompute BatchNorm stats on before each eval, 0: off "
        f"(default {_DEFAULT.precise_bn}).",
    ),
    save: Path | None = typer.Option(
        None,
        "--save",
        metavar="PATH",
        help="Checkpoint the run (each epoch, every --save-every minutes and at the end).",
    ),
    save_every: float = typer.Option(
        10.0, "--save-every", metavar="MIN", help="Minutes between checkpoints (0: every step)."
    ),
    resume: Path | None = typer.Option(
        None, "--resume", metavar="PATH", help="Continue the run saved there (same options)."
    ),
    init: Path | None = typer.Option(
        None,
        "--init",
        metavar="PATH",
        help="Start from these weights (e.g. a 224 model fine-tuned with --image-size 384).",
    ),
    ema: float | None = typer.Option(
        None, "--ema", metavar="DECAY", help="Also keep and evaluate an EMA of the weights."
    ),
    nproc: int = typer.Option(
        1, "--nproc", metavar="N", help="Data-parallel processes on this machine (one per GPU)."
    ),
    sync_batchnorm: bool = typer.Option(
        False, "--sync-batchnorm", help="BatchNorm statistics over the global batch (CUDA)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object, no progress bar."),
) -> None:
    """Train a proxy of SPEC on a dataset within a budget and report its accuracy.

    --batch-size is the global batch: --nproc N (or torchrun) gives each process 1/N of it.
    Exit status: 0 when the run finished (ok, budget or stopped), 1 when it diverged,
    2 for bad input.
    """
    from coatnet_nas._io import check_output_file
    from coatnet_nas.presets import resolve_spec
    from coatnet_nas.scaling import scale_spec
    from coatnet_nas.spec import validation_reason
    from coatnet_nas.train import Runtime, resolve_device
    from coatnet_nas.train.distributed import distributed_session, env_world_size

    given = {
        "epochs": epochs, "steps": steps, "seconds": seconds, "batch_size": batch_size, "lr": lr,
        "weight_decay": weight_decay, "warmup": warmup, "label_smoothing": label_smoothing,
        "grad_clip": grad_clip, "drop_path_rate": drop_path, "eval_every": eval_every,
        "augment": augment, "precise_bn": precise_bn, "ema": ema,
    }  # fmt: skip
    changes = {k: v for k, v in given.items() if v is not None}
    if grad_clip == 0:
        changes["grad_clip"] = None
    if epochs is None and (steps is not None or seconds is not None):
        changes["epochs"] = None  # only the budgets given
    recipe = _DEFAULT.evolve(**changes)
    runtime = Runtime(
        device=device, amp=amp, channels_last=channels_last, compile=compile_model,
        threads=threads, sync_batchnorm=sync_batchnorm,
    )  # fmt: skip
    resolve_device(runtime.device)  # options first: a bad device fails before any loading
    save = save if save is not None else resume  # a resumed run goes on saving where it was
    if save is not None:  # a bad target must fail now, not after the training it would lose
        check_output_file(save, param="save")
    _check_sources(resume, init, nproc, save_every)
    check_memory_cap(memory_cap)
    streaming = _stream_options(stream, dataset, nproc, loader_workers, auto_augment, mixup,
                                cutmix)  # fmt: skip
    spec = scale_spec(resolve_spec(spec_path), width_mult, depth_mult)
    size = parse_image_size(image_size) or spec.image_size
    try:  # check the size before spending time on the data
        spec.with_image_size(size)
    except ValidationError as exc:
        raise CoatnetError(f"--image-size {size[0]}x{size[1]}: {validation_reason(exc)}") from None
    if holdout not in ("split", "test"):
        raise CoatnetError(f"--holdout: expected 'split' or 'test', got {holdout!r}.")
    if nproc > 1 and env_world_size() == 1:  # this process launches the ranks
        if recipe.batch_size % nproc:
            raise CoatnetError(
                f"batch_size {recipe.batch_size} (the global batch) cannot be split evenly over "
                f"{nproc} processes; use a multiple of {nproc}.",
                param="batch_size",
            )
        return train_launch.launch(ctx, nproc, runtime)
    with distributed_session(runtime.device) as (world, placed):
        try:
            _train_here(
                spec, size, world, replace(runtime, device=placed), recipe, dataset=dataset,
                subset=subset, val_fraction=val_fraction, seed=seed, data_dir=data_dir,
                holdout=holdout, crop_padding=crop_padding, save=save, save_every=save_every,
                resume=resume, init=init, json_out=json_out or not world.main,
                width_mult=width_mult, depth_mult=depth_mult, memory_cap=memory_cap,
                streaming=streaming,
            )  # fmt: skip
        except CoatnetError as exc:
            if world.main:
                raise
            raise typer.Exit(exc.exit_code) from None  # rank 0 says it once


def _train_here(spec, size, world, runtime, recipe, *, dataset, subset, val_fraction, seed,
                data_dir, holdout, crop_padding, save, save_every, resume, init, json_out,
                width_mult, depth_mult, memory_cap, streaming) -> None:  # fmt: skip
    """Prepare the data and model on this rank, train, save, and (rank 0) report."""
    from coatnet_nas.data import prepare_data
    from coatnet_nas.data.stream import StreamingData
    from coatnet_nas.train import build_for_data, train_model
    from coatnet_nas.train.state import Checkpoints
    from coatnet_nas.train.weights import load_weights

    if streaming is not None:
        data = StreamingData.from_folder(
            streaming.pop("root"), size, device=runtime.device, subset=subset,
            val_fraction=val_fraction, holdout=holdout, seed=seed, **streaming,
        )  # fmt: skip
    else:
        data = prepare_data(
            dataset, size, subset=subset, val_fraction=val_fraction, seed=seed,
            device=runtime.device, data_dir=data_dir, in_chans=spec.in_chans,
            holdout=holdout, crop_padding=crop_padding,  # type: ignore[arg-type]
            memory_cap=memory_cap,
        )  # fmt: skip
    model = build_for_data(spec, data, drop_path_rate=recipe.drop_path_rate, seed=seed)
    if init is not None:
        load_weights(model, init)
    adapted = model.spec
    quiet = json_out or not world.main
    if not quiet:
        train_view.header(adapted, data, recipe, model, world.size)
    plan = Checkpoints(save, every=save_every * 60) if save is not None else None
    run = partial(train_model, model, data, recipe, runtime=runtime, seed=seed,
                  checkpoints=plan, resume=resume)  # fmt: skip
    result = run() if quiet else train_view.with_progress(run)
    if plan is not None:
        save = _rescue_if_failed(plan, model, adapted, result) if world.main else save
    if not world.main:
        raise typer.Exit(EXIT_DIVERGED if result.status == "diverged" else 0)
    if json_out:
        h, w = adapted.image_size
        print_json({
            **result.to_dict(),
            "spec": {"name": adapted.name, "layout": adapted.layout, "depths": list(adapted.depths),
                     "widths": list(adapted.widths), "image_size": [h, w],
                     "width_mult": width_mult, "depth_mult": depth_mult},
            "dataset": data.describe(),
            "recipe": recipe.model_dump(mode="json"),
            "runtime": {**asdict(runtime), "amp": runtime.amp.value, "seed": seed},
            "checkpoint": str(save) if save is not None else None,
            "resumed_from": str(resume) if resume is not None else None,
            "init": str(init) if init is not None else None,
        })  # fmt: skip
    else:
        train_view.summary(result, save)
    if result.status == "diverged":
        raise typer.Exit(EXIT_DIVERGED)


def _check_sources(resume: Path | None, init: Path | None, nproc: int, save_every: float) -> None:
    """Options that need no data: fail before any process starts or data loads."""
    if resume is not None and init is not None:
        raise CoatnetError(
            "resume continues a run with its own weights; init starts a new one from "
            "weights. Give one of them.",
            param="init",
        )
    for path, param in ((resume, "resume"), (init, "init")):
        if path is not None and not path.is_file():
            raise CoatnetError(f"{param} {path}: no such checkpoint file.", param=param)
    if nproc < 1:
        raise CoatnetError(f"nproc must be >= 1, got {nproc}.", param="nproc")
    if save_every < 0:
        raise CoatnetError(f"save_every must be >= 0 minutes, got {save_every:g}.",
                           param="save_every")  # fmt: skip


def _stream_options(stream: bool, dataset: str, nproc: int, workers: int, augment: str,
                    mixup: float, cutmix: float) -> dict | None:  # fmt: skip
    """The StreamingData settings for --stream (None without it), checked before any loading."""
    from coatnet_nas.data.sources import parse_name
    from coatnet_nas.data.stream import AUGMENTS

    if not stream:
        given = [f for f, on in (("--mixup", mixup), ("--cutmix", cutmix)) if on]
        if augment != "trivial":
            given.append("--auto-augment")
        if given:
            raise CoatnetError(f"{', '.join(given)} only apply with --stream (folder:PATH).")
        return None
    kind, arg = parse_name(dataset)
    if kind != "folder":
        raise CoatnetError(
            f"--stream reads image files: it needs --dataset folder:PATH, got {dataset!r} "
            "(that one is read from its prepared cache without --stream).",
        )
    if nproc > 1:
        raise CoatnetError("--stream runs in one process; use --nproc 1.")
    if workers < 0:
        raise CoatnetError(f"--loader-workers must be >= 0, got {workers}.")
    if augment not in AUGMENTS:
        raise CoatnetError(f"--auto-augment must be one of {', '.join(AUGMENTS)}, got {augment!r}.")
    for flag, value in (("--mixup", mixup), ("--cutmix", cutmix)):
        if not 0 <= value <= 1:
            raise CoatnetError(f"{flag} must be in [0, 1], got {value:g}.")
    return {"root": Path(arg or "").expanduser(), "workers": workers, "augment": augment,
            "mixup": mixup, "cutmix": cutmix}  # fmt: skip


def _rescue_if_failed(plan, model, spec, result) -> Path:
    """The checkpoint written; if the target failed, keep the trained model beside it."""
    from coatnet_nas.train import save_checkpoint

    if plan.error is None and plan.written is not None:
        return plan.written
    fallback = Path.cwd() / f"coatnet-rescued-{plan.path.name or 'model.pt'}"
    save_checkpoint(fallback, model, spec=spec, result=result)
    raise CoatnetError(
        f"{plan.error} The trained model was saved to {fallback} instead.", param="save"
    )
