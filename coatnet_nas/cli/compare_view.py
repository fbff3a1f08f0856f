"""What ``coatnet compare`` shows: a live bar on a terminal, one plain line per finished run when
piped, then the per-regime tables and rankings. Rendering only."""

from __future__ import annotations

from typing import Any

from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from coatnet_nas.cli.app import console
from coatnet_nas.units import human


class Display:
    """A rich progress bar: runs done overall, plus the run each worker is training."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            console=console,
        )
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
                val = r.get("val_accuracy")
                bar.update(self.total, stats=f"last: {key} val {val:.3f}" if val else key)

    def stop(self) -> None:
        if self.started:
            self.progress.stop()


class Lines:
    """Plain progress for logs and pipes: one line per finished run (a live bar would only be
    drawn at the end there, leaving the output silent for minutes)."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0

    def event(self, event: Any) -> None:
        if event.kind == "plan":
            self.total = event.total
            if event.resumed:
                console.print(f"resuming: {event.resumed} run(s) already stored", markup=False)
            if event.total:
                console.print(f"training {event.total} run(s)", markup=False)
            return
        if event.kind not in ("done", "error") or event.job is None:
            return
        self.done += 1
        job = event.job
        where = "capacity" if job.kind == "capacity" else job.regime.name
        head = f"[{self.done}/{self.total}] {job.layout} {where} seed {job.seed}"
        if event.kind == "error":
            console.print(f"{head}: failed: {event.message}", markup=False)
            return
        r = event.record or {}
        val = r.get("val_accuracy")
        acc = f"val acc {val * 100:.1f}%" if val is not None else f"status {r.get('status')}"
        if job.kind == "capacity":
            loss = r.get("capacity_loss")
            acc = f"{r.get('status')} at step {r.get('steps')}, loss " + (
                f"{loss:.3f}" if loss is not None else "-"
            )
        console.print(f"{head}: {acc}, {r.get('seconds', 0):.1f}s", markup=False)

    def stop(self) -> None:
        """Nothing to tear down (the live display's counterpart)."""


def report(summary: Any) -> None:
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
            console.print(table(summary, regime, rows))
    if summary.measures:
        console.print(measures_table(summary))
    if len(run.config.seeds) == 1:
        console.print(
            "rankings, best first (one seed: no spread measured; rankings are by the single run):",
            markup=False,
        )
    else:
        console.print("rankings, best first (> better beyond seed spread, ≈ tie):", markup=False)
    for name, ranking in summary.rankings.items():
        metric = METRICS.get(name, name)
        check = summary.paper[name]
        title = name.replace("_", " ")
        console.print(f"[bold]{title}[/] ({metric}, regime {ranking.regime})", highlight=False)
        console.print(f"  measured: {ranking.text()}", markup=False)
        console.print(f"  paper:    {check.paper}", markup=False)
        rho = "" if check.rho is None else f" Spearman rho vs the paper: {check.rho:+.2f}."
        console.print(f"  {check.sentence()}{rho}", markup=False)
    for note in summary.notes:
        console.print(f"note: {note}", markup=False)
    for error in run.errors:
        console.print(f"failed: {error}", markup=False)
    console.print(f"outputs in {run.out_dir}/: {', '.join(summary.files)}", markup=False)


METRICS = {
    "generalization": "val accuracy",
    "fitting_speed": "clean train loss after the fixed budget",
    "capacity": "lowest clean train loss, trained to a plateau on a fixed set",
}


def measures_table(summary: Any) -> Table:
    """Per layout: fitting speed and capacity, the two lower-is-better loss measures."""
    first = summary.measures[0]
    cap = next((m for m in summary.measures if m.capacity_runs), None)
    where = (
        f"{cap.capacity_image_size}px, {summary.run.capacity[0]['train_images']:,} images"
        if cap is not None and summary.run.capacity
        else "not measured"
    )
    table = Table(title=f"fitting speed (regime {first.regime}) vs capacity ({where})")
    for col in ("layout", "params", "fit loss", "capacity loss", "steps", "plateaued"):
        table.add_column(col, justify="left" if col == "layout" else "right")
    for m in summary.measures:
        table.add_row(
            m.layout,
            human(m.params) if m.params else "-",
            m.fit_loss.fmt(3),
            m.capacity_loss.fmt(3),
            m.capacity_steps.fmt(0),
            f"{m.capacity_plateaued}/{m.capacity_runs}",
        )
    return table


def table(summary: Any, regime: Any, rows: list[Any]) -> Table:
    ratios = {e.name: e.flops_ratio for e in summary.run.entrants}
    n = rows[0].train_images
    table = Table(
        title=f"{regime.name}: {regime.fraction * 100:g}% of the training data ({n:,} images)"
    )
    for col in (
        "layout",
        "params",
        "FLOPs",
        "train loss",
        "train acc %",
        "val acc %",
        "gap (pts)",
        "runs",
    ):
        table.add_column(col, justify="left" if col == "layout" else "right")
    for r in rows:
        table.add_row(
            r.layout,
            human(r.params),
            f"{human(r.flops)} ({ratios.get(r.layout, 0):.0%})",
            r.train_loss.fmt(3),
            r.train_accuracy.fmt(1, 100),
            r.val_accuracy.fmt(1, 100),
            r.gap.fmt(1, 100),
            f"{r.runs}" + (f" ({r.diverged} div.)" if r.diverged else ""),
        )
    return table


class PreviewLines:
    """``compare --proxy`` progress: one plain line per scored (or refused) candidate."""

    def __init__(self, layouts: int) -> None:
        self.layouts = layouts
        self.done = 0

    def __call__(self, record: dict[str, Any]) -> None:
        self.done += 1
        head = f"[{self.done}] {record['layout']} seed {record['seed']}"
        if record["status"] != "ok":
            console.print(f"{head}: not scored (why: below)", markup=False)
            return
        score = record["proxy_score"]
        console.print(f"{head}: {score:.4g} in {record['seconds']:.1f}s", markup=False)


def preview_report(preview: Any) -> None:
    """The layouts' proxy scores, their ranking and the paper's generalization ranking."""
    h, w = preview.config.train_size
    seeds = len(preview.seeds)
    console.print(
        f"{len(preview.entrants)} layouts at {human(preview.budget)} FLOPs ({h}x{w}) scored by "
        f"{preview.proxy.label}, {seeds} seed(s), in {preview.seconds:.1f}s",
        markup=False,
    )
    table = Table(title=f"proxy score ({preview.proxy.label}; higher is better)")
    for col in ("layout", "params", "FLOPs", "score", "proxy params", "status"):
        table.add_column(col, justify="left" if col in ("layout", "status") else "right")
    for s in preview.scores:
        table.add_row(
            s.layout,
            human(s.params),
            f"{human(s.flops)} ({s.flops_ratio:.0%})",
            s.score.fmt(4 if s.score.n == 0 or abs(s.score.mean) < 100 else 1),
            human(s.proxy_params) if s.proxy_params else "-",
            s.status,
        )
    console.print(table)
    check = preview.paper
    spread = "> better beyond seed spread, ≈ tie" if seeds > 1 else "one value per layout"
    console.print(f"ranking by the proxy, best first ({spread}):", markup=False)
    console.print(f"  proxy:  {preview.ranking.text()}", markup=False)
    console.print(f"  paper:  {check.paper} (generalization)", markup=False)
    rho = "-" if check.rho is None else f"{check.rho:+.2f}"
    console.print(f"  Spearman rho vs the paper: {rho}; {check.sentence()}", markup=False)
    for note in preview.notes():
        console.print(f"note: {note}", markup=False)
    for error in preview.errors:
        console.print(f"failed: {error}", markup=False)
    console.print(f"outputs in {preview.out_dir}/: {', '.join(preview.files)}", markup=False)
