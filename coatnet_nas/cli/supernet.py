"""``coatnet supernet train|extract``: a weight-sharing supernet over a search space."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from coatnet_nas.cli import train_launch
from coatnet_nas.cli.app import DATA, OPTIMISATION, OUTPUT, RUNTIME, app, console, print_json
from coatnet_nas.cli.options import BatchSize, DataDir, Device, LearningRate, Nproc
from coatnet_nas.errors import CoatnetError

supernet_app = typer.Typer(
    help="Train one weight-sharing supernet for a search space, then score candidates with "
    "`--proxy supernet:SUPER.pt` (search, proxy-check) or extract one as a checkpoint.",
    no_args_is_help=True,
)
app.add_typer(supernet_app, name="supernet")


@supernet_app.command("train")
def train(
    ctx: typer.Context,
    out: Path = typer.Option(
        ..., "--out", metavar="SUPER.pt", help="Write the supernet here.", rich_help_panel=OUTPUT
    ),
    space_path: Path | None = typer.Option(
        None,
        "--space",
        help="Search space YAML (default: the bundled default space).",
        rich_help_panel=DATA,
    ),
    dataset: str | None = typer.Option(
        None,
        "--dataset",
        "-d",
        metavar="NAME",
        help="Data set (default: the space's proxy's).",
        rich_help_panel=DATA,
    ),
    data_dir: DataDir = None,
    epochs: float | None = typer.Option(
        None,
        "--epochs",
        help="Epoch budget over the proxy's subset (default 10 if no budget).",
        rich_help_panel=OPTIMISATION,
    ),
    steps: int | None = typer.Option(
        None, "--steps", help="Step budget.", rich_help_panel=OPTIMISATION
    ),
    batch_size: BatchSize = None,
    lr: LearningRate = None,
    children: int = typer.Option(
        2, "--children", help="Random sub-networks per step.", rich_help_panel=OPTIMISATION
    ),
    distill: bool = typer.Option(
        True,
        "--distill/--no-distill",
        help="In-place distillation from the largest.",
        rich_help_panel=OPTIMISATION,
    ),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Seed of data split, init, draws."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run --out holds.", rich_help_panel=OUTPUT
    ),
    save_every: float = typer.Option(
        60.0,
        "--save-every",
        metavar="SECONDS",
        help="Rewrite --out this often (0: every step).",
        rich_help_panel=OUTPUT,
    ),
    device: Device = "cpu",
    threads: int | None = typer.Option(
        None, "--threads", help="CPU threads (default: torch's).", rich_help_panel=RUNTIME
    ),
    nproc: Nproc = 1,
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Train a supernet over a search space at its proxy's size (sandwich rule, resumable).

    --batch-size is the global batch: --nproc N (or torchrun) gives each process 1/N of it.
    """
    from coatnet_nas.search import load_space
    from coatnet_nas.supernet.parallel import split_batch
    from coatnet_nas.train.distributed import distributed_session, env_world_size

    if resume and not out.is_file():
        raise CoatnetError(f"--resume: {out} does not exist; drop --resume to start a run.")
    space = load_space(space_path)
    if nproc != 1 and env_world_size() == 1:  # this process launches the ranks
        split_batch(batch_size or space.proxy.train.batch_size, nproc)  # before any rank starts
        return train_launch.launch(ctx, nproc, device)
    with distributed_session(device) as (world, placed):
        try:
            run, setup = _train(space, ctx.params, placed, quiet=json_out or not world.main)
        except CoatnetError as exc:
            if world.main:
                raise
            raise typer.Exit(exc.exit_code) from None  # rank 0 says it once
    if not world.main:
        return
    summary = {
        "out": str(run.path),
        "steps": run.steps,
        "total": run.total,
        "resumed_from": run.resumed_from,
        "seconds": round(run.seconds, 2),
        "world_size": run.world_size,
        "space": setup.space.describe(),
    }
    if json_out:
        print_json(summary)
    else:
        console.print(f"supernet: {run.steps} steps in {run.seconds:.1f}s -> {run.path}")


def _train(space, p: dict, device: str, quiet: bool):  # type: ignore[no-untyped-def]
    """This rank's part of ``supernet train``: the data, the run; (the run, the setup)."""
    from coatnet_nas.supernet.train import SandwichRule, setup_supernet, train_supernet
    from coatnet_nas.threads import cpu_threads

    with cpu_threads(p["threads"]):
        setup = setup_supernet(
            space,
            dataset=p["dataset"],
            data_dir=str(p["data_dir"]) if p["data_dir"] else None,
            seed=p["seed"],
            device=device,
            epochs=p["epochs"],
            steps=p["steps"],
            batch_size=p["batch_size"],
            lr=p["lr"],
        )
        rule = SandwichRule(children=p["children"], distill=p["distill"])
        with _progress_bar(disabled=quiet) as progress:
            run = train_supernet(
                setup.space,
                setup.data,
                setup.settings,
                setup.recipe,
                p["out"],
                rule=rule,
                seed=p["seed"],
                device=device,
                resume=p["resume"],
                save_every=p["save_every"],
                source=setup.source,
                progress=progress,
            )
    return run, setup


@contextlib.contextmanager
def _progress_bar(disabled: bool):  # type: ignore[no-untyped-def]
    """A rich progress bar fed by the supernet trainer's progress callback."""
    columns = (
        TextColumn("supernet"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=disabled) as bar:
        task = bar.add_task("train", total=None, info="")

        def progress(info) -> None:  # type: ignore[no-untyped-def]
            text = f"loss {info.loss:.3f} acc(largest) {info.accuracy:.3f}"
            bar.update(task, completed=info.step, total=info.total, info=text)

        yield progress


@supernet_app.command("extract")
def extract(
    supernet_path: Path = typer.Argument(..., metavar="SUPER.pt", help="A trained supernet."),
    spec_path: str = typer.Argument(..., metavar="SPEC", help="Model spec YAML or preset."),
    out: Path = typer.Option(..., "--out", metavar="CKPT", help="Write the checkpoint here."),
    calibrate: int = typer.Option(
        4, "--calibrate", metavar="N", help="Training batches to recompute BatchNorm over."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Write a spec's inherited weights as a normal checkpoint (at the supernet's proxy size)."""
    from coatnet_nas.presets import resolve_spec
    from coatnet_nas.supernet.score import SupernetScorer
    from coatnet_nas.train.checkpoint import save_checkpoint

    scorer = SupernetScorer(
        supernet_path, device="cpu", batches=max(1, calibrate), param="supernet_path"
    )
    model, proxy, _ = scorer.model(resolve_spec(spec_path))
    save_checkpoint(out, model, spec=proxy)
    mults = {"width_mult": scorer.space.width_mult, "depth_mult": scorer.space.depth_mult}
    summary = {"out": str(out), "spec": proxy.to_dict(), **mults}
    if json_out:
        print_json(summary)
    else:
        console.print(
            f"{proxy.name} ({proxy.layout}, widths {list(proxy.widths)}) -> {out}; fine-tune "
            f"with: coatnet train SPEC --width-mult {scorer.space.width_mult:g} --image-size "
            f"{proxy.image_size[0]} --init {out}"
        )
