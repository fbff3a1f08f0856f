"""``coatnet compare``: the CoAtNet paper's layout study (generalization vs capacity), any data."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from coatnet_nas.cli.app import app, console, parse_image_size, print_json
from coatnet_nas.cli.options import (
    BatchSize,
    DataDir,
    Dataset,
    Device,
    Holdout,
    LabelSmoothing,
    LearningRate,
    Warmup,
    WeightDecay,
)
from coatnet_nas.errors import CoatnetError
from coatnet_nas.presets import preset_path
from coatnet_nas.units import human, parse_flops

DEFAULT_BASE = preset_path("coatnet0")  # bundled package data, found wherever the package is
EXIT_RUNS_FAILED = 1


@app.command()
def compare(
    layouts: str = typer.Option(
        "C-C-C-C,C-C-C-T,C-C-T-T,C-T-T-T,ViT",
        "--layouts",
        "-l",
        help="Comma-separated layout words: stage letters like C-C-T-T, or ViT (the paper's "
        "ViT_REL: patch stem + one T stage; ViT/8 fixes its total stride).",
    ),
    base_path: Path | None = typer.Option(
        None, "--base", help="Base spec YAML the layouts are built from (default: CoAtNet-0)."
    ),
    budget: str | None = typer.Option(
        None,
        "--budget",
        help="FLOPs per layout at --image-size, e.g. 4GFLOPs or 5M "
        "(default: the base spec's own cost there).",
    ),
    vary: str = typer.Option(
        "widths", "--vary", help="What budget fitting scales: widths, depths or both."
    ),
    depth_mult: float = typer.Option(
        1.0, "--depth-mult", help="Scale the base's stage depths first (CPU proxies)."
    ),
    dataset: Dataset = "synthetic",
    data_dir: DataDir = None,
    image_size: str | None = typer.Option(
        None, "--image-size", help="Training resolution, e.g. 32 (default: the base spec's)."
    ),
    regimes: str = typer.Option(
        "small=0.1,full=1.0",
        "--regimes",
        help="Data regimes as name=fraction of the training data; generalization is read in "
        "the smallest, capacity in the largest.",
    ),
    val_fraction: float = typer.Option(
        0.1, "--val-fraction", help="Held-out fraction shared by all regimes."
    ),
    holdout: Holdout = "split",
    epochs: float | None = typer.Option(
        None, "--epochs", help="Epochs per run in every regime (default 3 without --steps)."
    ),
    steps: int | None = typer.Option(
        None,
        "--steps",
        help="Steps per run in every regime: equal compute, so small regimes "
        "make more passes over less data (with --epochs, the first reached ends a run).",
    ),
    seeds: int = typer.Option(3, "--seeds", help="Seeds per (layout, regime): 0..N-1."),
    batch_size: BatchSize = 128,
    lr: LearningRate = 2e-3,
    weight_decay: WeightDecay = 0.05,
    warmup: Warmup = 0.05,
    label_smoothing: LabelSmoothing = 0.1,
    drop_path: float = typer.Option(0.0, "--drop-path", help="Stochastic depth for every run."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Random crop + flip."),
    train_eval_images: int = typer.Option(
        2000, "--train-eval-images", help="Training images the clean final train loss uses."
    ),
    workers: int = typer.Option(1, "--workers", help="Parallel runs (spawned processes)."),
    threads: int | None = typer.Option(
        None, "--threads", help="CPU threads per run (default: cores / workers)."
    ),
    device: Device = "auto",
    out: Path | None = typer.Option(
        None, "--out", help="Results folder (default runs/compare-<base>-<data>-<size>-<budget>)."
    ),
    fresh: bool = typer.Option(False, "--fresh", help="Discard runs stored in --out first."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary, no tables."),
) -> None:
    """Train layouts at one FLOPs budget in a small and a large data regime, and rank them by
    generalization (val accuracy with scarce data) and capacity (train loss with plentiful data),
    next to the CoAtNet paper's rankings. Re-running the same command resumes where it stopped.

    Exit status: 0 when every run finished, 1 when some runs failed (rerun to retry them),
    2 for bad input.
    """
    from coatnet_nas.compare import CompareConfig, Recipe, parse_regimes, run_compare
    from coatnet_nas.compare.report import summarize, write_outputs
    from coatnet_nas.spec import load_spec

    if base_path is None and not DEFAULT_BASE.exists():
        raise CoatnetError(f"--base: the default {DEFAULT_BASE} is missing; pass a spec file.")
    base = load_spec(base_path or DEFAULT_BASE)
    if seeds < 1:
        raise CoatnetError(f"--seeds must be >= 1, got {seeds}.")
    if epochs is None and steps is None:
        epochs = 3
    recipe = Recipe(
        epochs=epochs, steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
        warmup=warmup, label_smoothing=label_smoothing, drop_path_rate=drop_path,
        augment=augment, train_eval_images=train_eval_images,
    )  # fmt: skip
    flops = parse_flops(budget, what="--budget") if budget is not None else None
    size = parse_image_size(image_size)
    config = CompareConfig(
        base=base, layouts=tuple(w.strip() for w in layouts.split(",") if w.strip()),
        flops=flops, vary=vary, depth_mult=depth_mult, dataset=dataset,  # type: ignore[arg-type]
        data_dir=str(data_dir) if data_dir is not None else None, image_size=size,
        val_fraction=val_fraction, holdout=holdout,  # type: ignore[arg-type]
        regimes=parse_regimes(regimes), seeds=tuple(range(seeds)), recipe=recipe,
    )  # fmt: skip
    out_dir = out or Path("runs") / default_name(config)
    display = None if json_out else _Display()
    try:
        result = run_compare(
            config, out_dir, workers=workers, device=device, threads=threads, fresh=fresh,
            on_event=display.event if display else None,
        )  # fmt: skip
    finally:
        if display is not None:
            display.stop()
    summary = summarize(result)
    write_outputs(summary)
    if json_out:
        print_json(summary.to_dict())
    else:
        _report(summary)
    if result.errors:
        raise typer.Exit(EXIT_RUNS_FAILED)


def default_name(config: Any) -> str:
    """``compare-coatnet-0-fashion-mnist-32px-5.00M`` (budget ``base`` when not given)."""
    h, w = config.train_size
    size = f"{h}px" if h == w else f"{h}x{w}px"
    budget = human(config.flops) if config.flops else "base"
    data = re.sub(r"[^A-Za-z0-9.]+", "-", config.dataset.split("/")[-1]).strip("-")
    return f"compare-{config.base.name}-{data}-{size}-{budget}"


class _Display:
    """A rich progress bar: runs done overall, plus the run each worker is training."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), console=console,
        )  # fmt: skip
        self.total: TaskID | None = None
        self.workers: dict[int, TaskID] = {}
        self.started = False

    def event(self, event: Any) -> None:
        bar = self.progress
        if event.kind == "plan":
            if event.resumed:
                console.print(f"resuming: {event.resumed} run(s) already stored", markup=False)
            if event.total:
                bar.start()
                self.started = True
            self.total = bar.add_task("runs", total=max(1, event.total), stats="")
            return
        if self.total is None or event.job is None:
            return
        task = self.workers.get(event.worker)
        if task is None:
            task = self.workers[event.worker] = bar.add_task("", total=1.0, stats="")
        key = event.job.key.replace("|", " ")
        if event.kind == "start":
            bar.update(task, description=key, completed=0.0, stats="")
        elif event.kind == "progress" and event.info is not None:
            info = event.info
            bar.update(
                task,
                description=key,
                completed=info.fraction,
                stats=f"loss {info.train_loss:.3f} {info.images_per_second:,.0f} img/s",
            )
        elif event.kind in ("done", "error"):
            bar.update(task, completed=1.0)
            bar.advance(self.total)
            if event.kind == "error":
                console.print(f"run failed: {key}: {event.message}", markup=False)
            elif event.record is not None:
                r = event.record
                val = r["val_accuracy"]
                bar.update(self.total, stats=f"last: {key} val {val:.3f}" if val else key)

    def stop(self) -> None:
        if self.started:
            self.progress.stop()


def _report(summary: Any) -> None:
    run = summary.run
    h, w = run.config.train_size
    console.print(
        f"{len(run.entrants)} layouts at {human(run.budget)} FLOPs ({h}x{w}), "
        f"{len(run.config.seeds)} seed(s); {run.ran} run(s) trained now, {run.resumed} resumed "
        f"in {run.seconds:.0f}s",
        markup=False,
    )
    for regime in run.config.regimes:
        rows = summary.regime_rows(regime.name)
        if rows:
            console.print(_table(summary, regime, rows))
    console.print("rankings, best first (> better beyond seed spread, ≈ tie):", markup=False)
    for name, ranking in summary.rankings.items():
        metric = "val accuracy" if name == "generalization" else "clean train loss"
        check = summary.paper[name]
        console.print(f"[bold]{name}[/] ({metric}, regime {ranking.regime})", highlight=False)
        console.print(f"  measured: {ranking.text()}", markup=False)
        console.print(f"  paper:    {check.paper}", markup=False)
        console.print(f"  {check.sentence()}", markup=False)
    for note in summary.notes:
        console.print(f"note: {note}", markup=False)
    for error in run.errors:
        console.print(f"failed: {error}", markup=False)
    console.print(f"outputs in {run.out_dir}/: {', '.join(summary.files)}", markup=False)


def _table(summary: Any, regime: Any, rows: list[Any]) -> Table:
    ratios = {e.name: e.flops_ratio for e in summary.run.entrants}
    n = rows[0].train_images
    table = Table(
        title=f"{regime.name}: {regime.fraction * 100:g}% of the training data ({n:,} images)"
    )
    for col in ("layout", "params", "FLOPs", "train loss", "train acc %", "val acc %",
                "gap (pts)", "runs"):  # fmt: skip
        table.add_column(col, justify="left" if col == "layout" else "right")
    for r in rows:
        table.add_row(
            r.layout, human(r.params), f"{human(r.flops)} ({ratios.get(r.layout, 0):.0%})",
            r.train_loss.fmt(3), r.train_accuracy.fmt(1, 100), r.val_accuracy.fmt(1, 100),
            r.gap.fmt(1, 100), f"{r.runs}" + (f" ({r.diverged} div.)" if r.diverged else ""),
        )  # fmt: skip
    return table
