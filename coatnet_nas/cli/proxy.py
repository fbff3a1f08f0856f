"""``coatnet proxy-check``: how well does a cheap proxy rank architectures on your data?"""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from coatnet_nas.cli.app import (
    DATA,
    OPTIMISATION,
    OUTPUT,
    RUNTIME,
    SHRINK,
    app,
    console,
    print_json,
    renamed,
)
from coatnet_nas.cli.options import Budget, DataDir, Device, MaxParams, ProxyDataset
from coatnet_nas.units import parse_flops, parse_params


def _exit_if_interrupted(result, out: Path) -> None:
    """A stopped check: its partial table is written; one line, exit 128 + the signal."""
    if result.interrupted is None:
        return
    import signal
    import sys

    scored = sum(s not in ("", "interrupted") for s in result.statuses[result.reference])
    sys.stdout.flush()
    sys.stderr.write(
        f"interrupted ({result.interrupted}): proxy-check stopped with the reference scored on "
        f"{scored} of {len(result.specs)} architectures; the partial table (statuses "
        f"'interrupted' and empty for the rest) is in {out}/.\n"
    )
    raise typer.Exit(128 + signal.Signals[result.interrupted].value)


def _fmt(value: float, digits: int = 3) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:+.{digits}f}"


def _table(result) -> Table:
    ref_seconds = result.seconds[result.reference]
    table = Table(
        title=(
            f"proxy vs reference {result.reference} on {len(result.specs)} architectures "
            f"(reference {sum(ref_seconds) / len(ref_seconds):.1f} s/arch)"
        )
    )
    for col in ("proxy", "Spearman rho", "Kendall tau", f"top-{result.k} overlap", "s/arch", "n"):
        table.add_column(col, justify="left" if col == "proxy" else "right")
    for s in sorted(result.stats, key=lambda s: -s.spearman if not math.isnan(s.spearman) else 9):
        table.add_row(
            s.proxy,
            _fmt(s.spearman),
            _fmt(s.kendall),
            "-" if math.isnan(s.top_k) else f"{s.top_k:.2f}",
            f"{s.seconds_per_arch:.2f}",
            str(s.n),
        )
    return table


@app.command("proxy-check", cls=renamed(n="--trials"))
def proxy_check(
    space_path: Path | None = typer.Option(
        None, "--space", rich_help_panel=SHRINK, help="Search-space YAML (default: bundled)."
    ),
    n: int = typer.Option(
        16,
        "--trials",
        rich_help_panel=OPTIMISATION,
        metavar="N",
        help="Architectures to sample (distinct, within budget).",
    ),
    reference: str = typer.Option(
        "train:epochs=10",
        "--reference",
        rich_help_panel=OPTIMISATION,
        help="The longer recipe proxies are judged against.",
    ),
    proxies: str = typer.Option(
        "train:epochs=1,naswot,synflow,snip,grad_norm,jacob_cov,params,flops",
        "--proxies",
        rich_help_panel=OPTIMISATION,
        help="Comma-separated proxies: train[:key=value,...] or a training-free score.",
    ),
    dataset: ProxyDataset = None,
    data_dir: DataDir = None,
    subset: float | None = typer.Option(
        None,
        "--subset",
        rich_help_panel=DATA,
        help="Override the proxy data fraction (all recipes).",
    ),
    flops: Budget = None,
    params: MaxParams = None,
    top_k: int | None = typer.Option(
        None,
        "--top-k",
        rich_help_panel=OPTIMISATION,
        metavar="K",
        help="k of the top-k overlap (default n/4).",
    ),
    seed: int = typer.Option(
        0,
        "--seed",
        rich_help_panel=RUNTIME,
        metavar="N",
        help="One seed for sampling, data split and model init.",
    ),
    device: Device = "auto",
    out: Path = typer.Option(
        Path("runs/proxy-check"),
        "--out",
        rich_help_panel=OUTPUT,
        metavar="DIR",
        help="Output folder.",
    ),
    json_out: bool = typer.Option(
        False, "--json", rich_help_panel=OUTPUT, help="Print one JSON summary, no progress."
    ),
) -> None:
    """Check how well cheap proxies rank sampled architectures against a longer reference.

    Scores each architecture with every proxy and the reference, reports Spearman rho, Kendall
    tau and top-k overlap, and writes proxy_check.csv, proxy_stats.csv and a scatter PNG.
    """
    from coatnet_nas._io import ensure_dir
    from coatnet_nas.proxies.check import run_proxy_check
    from coatnet_nas.proxies.export import write_outputs
    from coatnet_nas.search.space import load_space

    space = load_space(space_path).with_proxy(
        dataset=dataset, data_dir=str(data_dir) if data_dir else None, subset=subset
    )
    ensure_dir(out, param="out")  # before the work, not after it
    flops = parse_flops(flops, what="flops") if flops is not None else None
    params = parse_params(params, what="params") if params is not None else None
    kwargs = dict(
        n=n,
        reference=reference,
        proxies=proxies,
        seed=seed,
        device=device,
        top_k=top_k,
        flops=flops,
        params=params,
    )
    if json_out:
        result = run_proxy_check(space, **kwargs)
    else:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[last]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("proxy-check", total=None, last="preparing data")

            def show(ev) -> None:
                bar.update(
                    task,
                    total=ev.total,
                    completed=ev.done,
                    last=f"arch {ev.arch + 1}/{ev.n} {ev.proxy} = {ev.value:.4g} "
                    f"({ev.seconds:.1f}s)",
                )

            result = run_proxy_check(space, on_event=show, **kwargs)
    files = write_outputs(result, out)
    _exit_if_interrupted(result, out)
    if json_out:
        print_json({**result.to_dict(), "files": {k: str(v) for k, v in files.items()}})
        return
    console.print(_table(result))
    console.print(
        f"wall time {result.wall_seconds:.0f}s; outputs in {out}/: {', '.join(files)}",
        markup=False,
    )
