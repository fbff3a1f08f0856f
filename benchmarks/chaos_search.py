"""Chaos benchmark: 3 workers on one PostgreSQL study while a seeded schedule breaks things.

Run: .venv/bin/python benchmarks/chaos_search.py [--minutes 16] [--seed 0] [--workers 3]
(run it as root or as a user who can run PostgreSQL's initdb/pg_ctl; ~minutes + 2 min).

A throwaway PostgreSQL server holds one study; ``--workers`` ``coatnet worker`` processes train
tiny proxies (6 s each) on it. Every 25-60 s the schedule (seeded) kills a worker with
``kill -9`` or sends it SIGTERM, and restarts it 3-15 s later with the same command line; at
about 1/3 and 2/3 of the run the database is restarted (``pg_ctl restart -m fast``, then a
stop, 8 s away, start). After the schedule the workers finish (their ``--timeout`` ends, queued
trials are drained) and the study is counted:

- requested: trials the workers started (the study's trials, repeats told from stored results
  and queued copies included); evaluated: trained to a result and recorded;
- duplicated: extra trainings of an architecture already trained to a result in the study;
- lost: trainings that finished (each worker appends the result to a side log, fsynced, the
  moment the objective returns) but whose result is in the study neither on that trial nor on a
  trial recovered from it;
- left RUNNING / WAITING at the end; tracebacks printed by any worker (stderr captured).

Prints a markdown section for benchmarks/RESULTS.md and writes the raw counts as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

TRAINED = {"ok", "budget", "stopped", "pruned", "diverged"}
SPACE = {
    "name": "chaos",
    "layouts": ["C-T", "C-C", "T-T", "T-C"],
    "stem_depth": 1,
    "depths": [[1, 3], [1, 3]],
    "widths": [[16], [16, 32, 48, 64], [32, 48, 64, 96, 128]],
    "transformer": {"head_dim": [16]},
    "target": {"image_size": 64, "num_classes": 10},
    "budget": {"flops": "1G"},
    "proxy": {
        "dataset": "synthetic:400",
        "image_size": 16,
        "width_mult": 0.5,
        "epochs": None,
        "steps": None,
        "seconds": 6.0,
        "subset": 1.0,
        "batch_size": 32,
        "evals_per_epoch": 2,
    },
}


# --- the PostgreSQL server --------------------------------------------------------------------


class Postgres:
    def __init__(self, root: Path) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        self.bindir = str(found[-1].parent) if found else os.path.dirname(shutil.which("pg_ctl"))
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.datadir = root / "pg"
        self.datadir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.datadir, "postgres", "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"postgresql://coatnet@127.0.0.1:{self.port}/coatnet"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.prefix, f"{self.bindir}/{tool}", *args],
            check=True,
            capture_output=True,
            timeout=120,
            cwd=self.datadir,
        )

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1"
        log = f"{self.datadir}/server.log"
        self._run("pg_ctl", "-D", str(self.datadir), "-l", log, "-w", "-o", opts, "start")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.datadir), "-U", "coatnet", "--auth=trust")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "coatnet", "coatnet")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        log = f"{self.datadir}/server.log"
        self._run("pg_ctl", "-D", str(self.datadir), "-l", log, "-m", "fast", "-w", "restart")


# --- one worker: `coatnet worker` with a side log of finished trainings -----------------------


def worker_main(log_path: str, argv: list[str]) -> int:
    """``coatnet worker ARGV``, appending each objective's result to ``log_path`` (fsynced)."""
    from coatnet_nas.cli import run
    from coatnet_nas.search.objective import Objective

    original = Objective.__call__

    def logged(self, trial):
        result = original(self, trial)  # pruned/failed trainings raise: not "finished"
        line = json.dumps({"number": trial.number, "value": result, "pid": os.getpid()})
        with open(log_path, "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        return result

    Objective.__call__ = logged
    return run(["worker", *argv])


class Worker:
    def __init__(self, index: int, root: Path, argv_for) -> None:
        self.index, self.root, self.argv_for = index, root, argv_for
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.exits: list[int] = []

    def start(self) -> None:
        self.starts += 1
        err = open(self.root / f"worker{self.index}.{self.starts}.err", "w")  # noqa: SIM115
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--as-worker",
                str(self.root / "finished.jsonl"),
                *self.argv_for(),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            cwd=ROOT,
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            self.proc.send_signal(signum)

    def reap(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self.exits.append(self.proc.returncode)
            self.proc = None


# --- the run ----------------------------------------------------------------------------------


def run(minutes: float, seed: int, workers: int, root: Path) -> dict:

    pg = Postgres(root)
    pg.init()
    try:
        return _run(pg, minutes, seed, workers, root)
    finally:
        with contextlib.suppress(Exception):
            pg.stop()


def _run(pg: Postgres, minutes: float, seed: int, workers: int, root: Path) -> dict:
    import yaml

    rng = random.Random(seed)
    space = root / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    study = "chaos"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # The study: created by a one-trial search with the training proxy (what workers join).
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from coatnet_nas.cli import main; main()",
            "search",
            "--space",
            str(space),
            "--storage",
            pg.url,
            "--study",
            study,
            "--trials",
            "1",
            "--device",
            "cpu",
            "--sampler",
            "tpe",
            "--pruner",
            "none",
            "--heartbeat",
            "10",
            "--json",
            "--out",
            str(root / "out"),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    start = time.monotonic()
    end = start + minutes * 60

    def argv_for() -> list[str]:
        left = max(1.0, end - time.monotonic())
        return [
            "--storage",
            pg.url,
            "--study",
            study,
            "--trials",
            "100000",
            "--device",
            "cpu",
            "--timeout",
            f"{left:.0f}s",
        ]

    pool = [Worker(i, root, argv_for) for i in range(workers)]
    try:
        return _schedule(pg, pool, rng, start, end, minutes, root, study)
    finally:
        for w in pool:
            if w.alive():
                w.proc.kill()


def _schedule(pg, pool, rng, start, end, minutes, root, study) -> dict:
    for w in pool:
        w.start()
    events: list[str] = []
    restarts = sorted([start + minutes * 60 / 3, start + 2 * minutes * 60 / 3])
    pending: list[tuple[float, Worker]] = []
    next_fault = start + rng.uniform(25, 60)
    db_events = 0

    def log(what: str) -> None:
        events.append(f"{time.monotonic() - start:6.0f}s {what}")
        print(events[-1], flush=True)

    while time.monotonic() < end:
        time.sleep(0.5)
        now = time.monotonic()
        for w in pool:
            if w.proc is not None and not w.alive():
                w.reap()
                log(f"worker {w.index} exited with {w.exits[-1]}")
        for due, w in list(pending):
            if now >= due and not w.alive():
                pending.remove((due, w))
                w.start()
                log(f"worker {w.index} restarted")
        if restarts and now >= restarts[0]:
            restarts.pop(0)
            db_events += 1
            if db_events == 1:
                pg.restart()
                log("database restarted (pg_ctl restart -m fast)")
            else:
                pg.stop()
                log("database stopped")
                time.sleep(8)
                pg.start()
                log("database started after 8 s away")
        if now >= next_fault and now < end - 30:
            next_fault = now + rng.uniform(25, 60)
            live = [w for w in pool if w.alive()]
            if live:
                w = rng.choice(live)
                kind = rng.choice(["kill -9", "SIGTERM"])
                w.signal(signal.SIGKILL if kind == "kill -9" else signal.SIGTERM)
                log(f"{kind} worker {w.index}")
                pending.append((now + rng.uniform(3, 15), w))
    log("schedule over; waiting for the workers to finish")
    deadline = time.monotonic() + 600
    for w in pool:
        if w.proc is not None:
            try:
                w.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
            w.reap()
    counts = count(pg.url, study, root)
    counts["events"] = events
    counts["worker_exits"] = {w.index: w.exits for w in pool}
    counts["wall_seconds"] = round(time.monotonic() - start)
    return counts


def count(url: str, study_name: str, root: Path) -> dict:
    import optuna
    from optuna.trial import TrialState

    from coatnet_nas.search.runner import counted

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    trials = optuna.load_study(study_name=study_name, storage=url).get_trials()
    by_number = {t.number: t for t in trials}
    recovered = {
        t.user_attrs["recovered_from"]: t for t in trials if "recovered_from" in t.user_attrs
    }
    trained: dict[str, int] = {}
    for t in trials:
        status = t.user_attrs.get("status")
        if t.state.is_finished() and status in TRAINED and "duplicate_of" not in t.user_attrs:
            key = t.user_attrs.get("arch_key") or json.dumps(t.params, sort_keys=True)
            trained[key] = trained.get(key, 0) + 1
    finished = [
        json.loads(line) for line in (root / "finished.jsonl").read_text().splitlines() if line
    ]
    lost = []
    for f in finished:
        t = recovered.get(f["number"], by_number.get(f["number"]))
        if t is None or t.state != TrialState.COMPLETE or t.value != f["value"]:
            lost.append(f["number"])
    tracebacks = sum(p.read_text().count("Traceback") for p in root.glob("worker*.err"))
    statuses: dict[str, int] = {}
    for t in trials:
        s = t.user_attrs.get("status", t.state.name.lower())
        statuses[s] = statuses.get(s, 0) + 1
    return {
        "requested": len(trials),
        "evaluated": sum(map(counted, trials)),
        "finished_trainings": len(finished),
        "duplicated": sum(n - 1 for n in trained.values()),
        "lost": len(lost),
        "lost_trials": lost,
        "running": sum(t.state == TrialState.RUNNING for t in trials),
        "waiting": sum(t.state == TrialState.WAITING for t in trials),
        "recovered_from_journal": len(recovered),
        "tracebacks": tracebacks,
        "statuses": statuses,
    }


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--as-worker":
        sys.exit(worker_main(sys.argv[2], sys.argv[3:]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=16.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="write the counts here")
    args = parser.parse_args()
    from machine import cpu_model

    root = Path(tempfile.mkdtemp(prefix="coatnet-chaos-"))
    root.chmod(0o755)  # the server runs as user postgres
    os.environ.setdefault("COATNET_JOURNAL", str(root / "journal"))
    counts = run(args.minutes, args.seed, args.workers, root)
    if args.json:
        args.json.write_text(json.dumps(counts, indent=2))
    day = datetime.date.today().isoformat()
    print(f"\n### Chaos search ({day}, {cpu_model()}, {os.cpu_count()} cores)\n")
    print(
        f"`python benchmarks/chaos_search.py --minutes {args.minutes:g} --seed {args.seed} "
        f"--workers {args.workers}`: {counts['wall_seconds']} s\n"
    )
    print(
        "| requested | evaluated | duplicated | lost | left RUNNING | left WAITING | tracebacks |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {counts['requested']} | {counts['evaluated']} | {counts['duplicated']} | "
        f"{counts['lost']} | {counts['running']} | {counts['waiting']} | {counts['tracebacks']} |"
    )
    print(
        f"\nstatuses: {counts['statuses']}; finished trainings logged by the workers: "
        f"{counts['finished_trainings']}; recovered from a journal: "
        f"{counts['recovered_from_journal']}; worker exit codes: {counts['worker_exits']}\n"
    )
    print("events:\n")
    for e in counts["events"]:
        print(f"    {e}")


if __name__ == "__main__":
    main()
