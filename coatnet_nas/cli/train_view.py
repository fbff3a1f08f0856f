"""What ``coatnet train`` shows: the run header, the live progress bar and the final summary."""

from __future__ import annotations

from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from coatnet_nas.cli.app import console
from coatnet_nas.units import human


def header(spec, data, recipe, model, world_size: int = 1) -> None:
    h, w = spec.image_size
    params = sum(p.numel() for p in model.parameters())
    from coatnet_nas.cost import estimate_cost

    flops = estimate_cost(spec).flops
    budget = ", ".join(
        f"{v:g} {k}"
        for k, v in (("epochs", recipe.epochs), ("steps", recipe.steps), ("s", recipe.seconds))
        if v is not None
    )
    console.print(
        f"training {spec.name} {spec.layout} depths={list(spec.depths)} widths={list(spec.widths)} "
        f"({human(params)} params, {human(flops)} FLOPs @ {h}x{w})\n"
        f"on {data.name}: {len(data.train)} train / {len(data.val)} val images, "
        f"{data.num_classes} classes, device {data.device}"
        f"{f' x {world_size} processes' if world_size > 1 else ''}; budget {budget}",
        markup=False,
    )


def with_progress(run):
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("train", total=1.0, stats="")

        def progress(info) -> None:
            val = f" val {info.val_accuracy:.3f}" if info.val_accuracy is not None else ""
            stats = (
                f"ep {info.epoch:.2f} loss {info.train_loss:.3f} acc {info.train_accuracy:.3f}"
                f"{val} {info.images_per_second:,.0f} img/s"
            )
            bar.update(task, completed=info.fraction, stats=stats)

        result = run(progress=progress)
        bar.update(task, completed=1.0)
    return result


def summary(result, save: Path | None) -> None:
    table = Table(title=f"proxy training: {result.status}", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("val accuracy", f"{result.val_accuracy:.4f}"),
        ("best val accuracy", f"{result.best_val_accuracy:.4f}"),
        ("train loss", f"{result.train_loss:.4f}"),
        ("train accuracy", f"{result.train_accuracy:.4f}"),
        ("epochs / steps", f"{result.epochs:.2f} / {result.steps}"),
        ("wall time", f"{result.seconds:.1f} s"),
        ("throughput", f"{result.images_per_second:,.0f} img/s"),
        ("params / FLOPs", f"{human(result.params)} / {human(result.flops or 0)}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    if result.reason and result.status != "ok":
        console.print(f"{result.status}: {result.reason}", markup=False)
    if save is not None:
        console.print(f"checkpoint: {save}", markup=False)


def stopped(exc: BaseException) -> None:
    """The one line after a stop signal (SIGTERM, Ctrl-C) ended the run between two steps
    (the training loop attached what it saved to the exception)."""
    import sys

    from coatnet_nas.signals import signal_name

    signum = getattr(exc, "signum", None)
    what = signal_name(signum) if signum is not None else "Ctrl-C"
    written, error = getattr(exc, "checkpoint", None), getattr(exc, "checkpoint_error", None)
    at = f" at step {exc.step}" if hasattr(exc, "step") else ""
    if error is not None:
        note = f"stopped{at}; the checkpoint could not be written: {error}"
    elif written is None:
        note = (
            f"stopped{at}, no checkpoint (train with --save PATH --resume auto to make the run "
            "resumable)"
        )
    else:
        note = (
            f"stopped{at}, checkpoint saved to {written}; run the same command with --resume "
            f"{written} (or --resume auto) to continue"
        )
    console.file.flush()
    sys.stdout.flush()
    sys.stderr.write(f"interrupted ({what}): {note}.\n")
    sys.stderr.flush()
