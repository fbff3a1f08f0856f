"""Wall time of ``coatnet build SPEC --profile`` against ``import torch, fvcore.nn`` (issue 2).

Both run as fresh subprocesses of the project's venv, interleaved (the order flips every round so
that load from other processes on the machine hits both alike); the numbers are medians. Target:
the build + profile takes at most 2x the bare import. A ``python -c pass`` run is timed alongside
as the interpreter's own start-up floor.

``--breakdown`` adds a table of where a CLI run spends its time, measured in fresh child processes
that walk the same path as the command (CLI imports, torch, fvcore, spec, model construction,
fvcore trace, table) and time each phase in-process.

    python benchmarks/bench_build.py [--runs 9] [--breakdown]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = "specs/coatnet0.yaml"

# Runs in a fresh interpreter; walks the path of `coatnet build SPEC --profile` phase by phase.
BREAKDOWN_CHILD = r"""
import json, sys, time
clock = time.perf_counter
spec_path = sys.argv[1]
t = {}
s = clock(); import coatnet_nas.cli; t["CLI imports (typer, rich, pydantic spec)"] = clock() - s
s = clock(); import torch; t["import torch"] = clock() - s
s = clock(); import fvcore.nn; t["import fvcore.nn"] = clock() - s
s = clock(); import coatnet_nas.profile as P; t["import coatnet_nas.profile/builder"] = clock() - s
from coatnet_nas.blocks.layers import init_weights
from coatnet_nas.builder import build_model
from coatnet_nas.spec import load_spec
s = clock(); spec = load_spec(spec_path); t["load + validate spec"] = clock() - s
s = clock(); model = build_model(spec, initialize=False)
t["build model (construct, PyTorch default init)"] = clock() - s
s = clock(); result = P.profile_model(model); t["profile: fvcore JIT trace + counts"] = clock() - s
from rich.console import Console
import io
s = clock()
from coatnet_nas.cli import build as cli_build
cli_build.console = Console(file=io.StringIO(), width=100)
cli_build._profile_table(result)
t["render table"] = clock() - s
# Sub-phases, measured after the fact (not part of the path above).
extra = {}
s = clock(); model.apply(init_weights)
extra["  init_weights pass (skipped by the profiler)"] = clock() - s
inits = ("kaiming_uniform_", "kaiming_normal_", "trunc_normal_", "uniform_", "normal_")
saved = {name: getattr(torch.nn.init, name) for name in inits}
for name in inits:
    setattr(torch.nn.init, name, lambda tensor, *a, **k: tensor)
s = clock(); build_model(spec); extra["  of build: construction, every init a no-op"] = clock() - s
for name, fn in saved.items():
    setattr(torch.nn.init, name, fn)
model.eval()
x = torch.zeros(1, spec.in_chans, *spec.image_size)
with torch.no_grad():
    s = clock(); model(x); extra["  of trace: one plain batch-1 forward"] = clock() - s
print(json.dumps({"phases": t, "extra": extra}))
"""


def wall(cmd: list[str]) -> float:
    env = dict(os.environ)
    while cmd and "=" in cmd[0]:  # leading NAME=value words set the child's environment
        name, value = cmd[0].split("=", 1)
        env[name] = value
        cmd = cmd[1:]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr.decode()}")
    return elapsed


def interleave(cmds: dict[str, list[str]], runs: int, warmup: int) -> dict[str, list[float]]:
    names = list(cmds)
    for _ in range(warmup):
        for name in names:
            wall(cmds[name])
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(runs):
        for name in names if r % 2 == 0 else names[::-1]:
            times[name].append(wall(cmds[name]))
    return times


def breakdown(python: str, spec: str, runs: int) -> tuple[dict[str, float], dict[str, float]]:
    samples: list[dict] = []
    for _ in range(runs):
        out = subprocess.run(
            [python, "-W", "ignore", "-c", BREAKDOWN_CHILD, spec],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        samples.append(json.loads(out.strip().splitlines()[-1]))
    med = {
        key: {k: statistics.median(s[key][k] for s in samples) for k in samples[0][key]}
        for key in ("phases", "extra")
    }
    return med["phases"], med["extra"]


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv", help="the project's venv")
    parser.add_argument("--spec", default=DEFAULT_SPEC)
    parser.add_argument("--runs", type=int, default=9, help="interleaved runs of each (>= 7)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--breakdown", action="store_true", help="also time the CLI's phases")
    parser.add_argument("--breakdown-runs", type=int, default=5)
    parser.add_argument(
        "--one-thread",
        action="store_true",
        help="also time the build with OMP_NUM_THREADS=1 (shows sensitivity to CPU contention)",
    )
    args = parser.parse_args(argv)

    python = args.venv / "bin" / "python"
    coatnet = args.venv / "bin" / "coatnet"
    cmds = {
        "build": [str(coatnet), "build", args.spec, "--profile"],
        "import": [str(python), "-c", "import torch, fvcore.nn"],
        "startup": [str(python), "-c", "pass"],
    }
    shown = {
        "build": f"{rel(coatnet)} build {args.spec} --profile",
        "import": f'{rel(python)} -c "import torch, fvcore.nn"',
        "startup": f'{rel(python)} -c "pass"',
    }
    if args.one_thread:
        cmds["build-1t"] = ["OMP_NUM_THREADS=1", *cmds["build"]]
        shown["build-1t"] = f"OMP_NUM_THREADS=1 {shown['build']}"
    times = interleave(cmds, args.runs, args.warmup)
    med = {name: statistics.median(v) for name, v in times.items()}
    paired = statistics.median(b / i for b, i in zip(times["build"], times["import"], strict=True))
    ratio = med["build"] / med["import"]

    version = subprocess.run(
        [str(python), "-c", "import torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    cmd = " ".join(["python", "benchmarks/bench_build.py", *(argv or sys.argv[1:])])
    print("### `coatnet build --profile` vs `import torch, fvcore.nn`\n")
    print(
        f"- machine: {cpu_model()}, {os.cpu_count()} cores; Python "
        f"{platform.python_version()}, torch {version}"
    )
    print(
        f"- benchmark: `{cmd}`; {args.runs} interleaved runs each after {args.warmup} "
        "warm-up, fresh subprocesses, wall time\n"
    )
    print("| command | median s | min s | max s |")
    print("|---|--:|--:|--:|")
    for name in cmds:
        v = times[name]
        print(f"| `{shown[name]}` | {med[name]:.2f} | {min(v):.2f} | {max(v):.2f} |")
    verdict = "meets" if ratio <= 2.0 else "misses"
    print(
        f"\nbuild/import: **{ratio:.2f}x** (median of paired ratios {paired:.2f}x); "
        f"target <= 2x: {verdict}"
    )
    if args.one_thread:
        print(f"with OMP_NUM_THREADS=1: {med['build-1t'] / med['import']:.2f}x")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average at the end: {load:.2f} on {os.cpu_count()} cores")

    if args.breakdown:
        phases, extra = breakdown(str(python), args.spec, args.breakdown_runs)
        total = sum(phases.values())
        print(
            f"\n#### where a build --profile run goes (in-process, median of "
            f"{args.breakdown_runs} fresh processes)\n"
        )
        print("| phase | s | share of in-process |")
        print("|---|--:|--:|")
        print(f"| interpreter start-up + exit (`python -c pass`) | {med['startup']:.2f} | - |")
        for name, secs in phases.items():
            print(f"| {name} | {secs:.2f} | {secs / total:.0%} |")
        print(f"| **in-process total** | {total:.2f} | 100% |")
        for name, secs in extra.items():
            note = "(not on the path)" if "skipped" in name else "(part of above)"
            print(f"| {name.strip()} | {secs:.2f} | {note} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
