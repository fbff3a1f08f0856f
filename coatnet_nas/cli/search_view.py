"""What ``coatnet search``/``report`` show: the live progress panel, the leaderboard, the
export summary. Rendering only; the commands in :mod:`coatnet_nas.cli.search` call these."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.live import Live
from rich.table import Table

from coatnet_nas.cli.app import console, print_json
from coatnet_nas.units import human


def progress_view(p, title: str) -> Table:
    table = Table.grid(padding=(0, 2))
    bar_width = 30
    filled = int(bar_width * min(1.0, p.done / max(p.target, 1)))
    best = f"{p.best_value:.4f} (trial {p.best_number})" if p.best_value is not None else "-"
    table.add_row(
        f"[bold]{title}[/]",
        "[green]" + "█" * filled + "[/]" + "░" * (bar_width - filled),
        f"{p.done}/{p.target} trials",
    )
    table.add_row(
        "",
        f"complete {p.complete}  pruned {p.pruned}  failed {p.failed}  running {p.running}",
        f"best {best}  {p.elapsed:.0f}s",
    )
    return table


@contextmanager
def live_progress(title: str, *, quiet: bool) -> Iterator[Callable[[Any], None]]:
    """A live progress panel while the block runs (nothing when ``quiet``); yields the
    callback that updates it."""
    if quiet:
        yield lambda progress: None
        return
    live = Live(console=console, refresh_per_second=4, transient=False)
    live.start()
    try:
        yield lambda progress: live.update(progress_view(progress, title))
    finally:
        live.stop()


def interrupted(study_name: str, exc: BaseException | None = None) -> int:
    """The one line after Ctrl-C or SIGTERM (the trial in flight is already re-queued); the
    exit status (130 for Ctrl-C, 128 + the signal otherwise: 143 for SIGTERM)."""
    console.file.flush()
    import sys

    from coatnet_nas.signals import signal_name

    signum = getattr(exc, "signum", None)
    what = f" ({signal_name(signum)})" if signum is not None else ""
    sys.stderr.write(
        f"interrupted{what}: the trial in progress is re-queued in study {study_name}; run the "
        "same command to continue.\n"
    )
    return 128 + signum if signum is not None else 130


def ladder_json(ladder: dict | None) -> dict:
    """The verdict's keys of ``--json`` (present, empty, for a study without a ladder)."""
    empty = {"finalists": [], "baselines": [], "verdicts": [], "rung_correlations": []}
    return {**empty, "noise": None, **(ladder or {})}


def show_ladder(ladder: dict) -> None:
    """Finalists on the top rung with their intervals, then the verdicts in words."""
    top = ladder["top_rung"]
    if top is None:
        console.print("ladder: no candidate finished yet", markup=False)
        return
    table = Table(
        title=f"finalists on rung {top} of {ladder['rungs'] - 1} (mean val accuracy "
        "over seeds, 95% t-interval)"
    )
    for col in ("#", "layout", "depths", "widths", "mean", "± 95%", "seeds"):
        table.add_column(col, justify="left" if col in ("layout", "depths", "widths") else "right")
    for rank, f in enumerate(ladder["finalists"], 1):
        spec = f["spec"] or {}
        stages = spec.get("stages", [])
        depths = "-".join(str(x["depth"]) for x in [spec.get("stem", {}), *stages] if x)
        widths = "-".join(str(x["width"]) for x in [spec.get("stem", {}), *stages] if x)
        half = f"{f['half_width']:.4f}" if f["half_width"] is not None else "-"
        table.add_row(
            str(rank), f["layout"] or "", depths, widths, f"{f['mean']:.4f}", half, str(f["seeds"])
        )
    console.print(table)
    for v in ladder["verdicts"]:
        console.print(f"verdict: the winner {v['text']}", markup=False)
    for c in ladder["rung_correlations"]:
        rho = "n/a (fewer than 3 shared)" if c["spearman"] is None else f"{c['spearman']:+.2f}"
        console.print(
            f"rank correlation rung {c['rungs'][0]} -> {c['rungs'][1]}: Spearman {rho} over "
            f"{c['n']} promoted candidates",
            markup=False,
        )
    if ladder.get("noise"):
        console.print(f"proxy noise: {ladder['noise']['text']}", markup=False)


def leaderboard(rows: list[dict], top: int = 10, score: str = "accuracy") -> Table:
    done = [
        r
        for r in rows
        if r["state"] == "COMPLETE"
        and r["feasible"]
        and r.get("duplicate_of") is None
        and not r.get("rung")
        and not r.get("seed")
    ]  # rung 0's single-seed proxy scores; the ladder's finalists are shown apart
    done.sort(key=lambda r: -(r["val_accuracy"] or 0))
    what = "rung-0 proxy val accuracy" if score == "accuracy" else f"training-free score {score}"
    latency = any(r.get("latency_ms") is not None for r in done)
    table = Table(title=f"leaderboard ({what}; FLOPs/params at target size)")
    columns = ["#", "trial", "layout", "depths", "widths", "params", "FLOPs"]
    columns += [*(["latency ms"] if latency else []), score, "seconds"]
    for col in columns:
        table.add_column(
            col, justify="right" if col not in ("layout", "depths", "widths") else "left"
        )
    for rank, r in enumerate(done[:top], 1):
        table.add_row(
            str(rank),
            str(r["number"]) + (" (yardstick)" if r.get("yardstick") else ""),
            r["layout"],
            r["depths"],
            r["widths"],
            human(r["params"]),
            human(r["flops"]),
            *([_ms(r.get("latency_ms"))] if latency else []),
            f"{r['val_accuracy']:.4f}" if score == "accuracy" else f"{r['val_accuracy']:.4g}",
            f"{r['seconds']:.0f}" if r["seconds"] is not None else "-",
        )
    return table


def _ms(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def summary(rows: list[dict]) -> str:
    count: dict[str, int] = {}
    for r in rows:
        count[r["status"]] = count.get(r["status"], 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(count.items()))


def show_export(
    export, json_out: bool, study_name: str, storage: str, score: str = "accuracy"
) -> None:
    if json_out:
        print_json(
            {
                "study": study_name,
                "storage": storage,
                "out": str(export.out_dir),
                "best": export.best,
                "files": {k: str(v) for k, v in export.files.items()},
                "trials": export.rows,
                "notes": export.notes,
                **ladder_json(export.ladder),
            }
        )
        return
    console.print(leaderboard(export.rows, score=score))
    if export.ladder and export.ladder["rungs"] > 1:
        show_ladder(export.ladder)
    console.print(f"trials by status: {summary(export.rows)}", markup=False)
    for note in export.notes:
        console.print(f"note: {note}", markup=False)
    if "best.yaml" in export.files:
        path = export.files["best.yaml"]
        console.print(f"best spec: {path}  (rebuild: coatnet build {path} --profile)", markup=False)
    console.print(f"outputs in {export.out_dir}/: {', '.join(export.files)}", markup=False)


# The proxy data set of a search (options.ProxyDataset has no short -d; every other command's
# --dataset has one). Help texts below are shared by search, worker and report.
