"""Speed of our CoAtNet-0 against timm's ``coatnet_0_224`` on CPU (issue 2).

timm imports torchvision, which cannot sit beside the project's torch 2.13.0 CPU wheel, so this
benchmark runs from its own, git-ignored venv. Create it once from the repository root:

    python3 -m venv .bench-venv
    .bench-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 timm
    .bench-venv/bin/pip install --no-deps -e .
    .bench-venv/bin/pip install pydantic typer rich fvcore optuna pyyaml matplotlib \
        platformdirs pillow numpy

Then:  .bench-venv/bin/python benchmarks/bench_vs_timm.py [--profile]

Every model lives in one process and the timed loops alternate between them (the order rotates
each round), so load from other processes on the machine hits all of them alike. Forward is
eval mode under ``torch.inference_mode``; a train step is train mode, forward, cross-entropy,
backward and an AdamW step. Throughputs are medians over rounds; "paired" ratios are the median
of the per-round ratios.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from fvcore.nn import FlopCountAnalysis
from machine import cpu_model
from torch import nn

from coatnet_nas.builder import build_model
from coatnet_nas.profile import SDPA_OP, count_flops, sdpa_flop_jit

ROOT = Path(__file__).resolve().parents[1]
OURS_SPEC = ROOT / "specs" / "coatnet0.yaml"
VARIANT_SPEC = ROOT / "benchmarks" / "specs" / "coatnet0_timm_cost.yaml"
REFERENCE = "timm"


def make_models(variants: list[Path], drop_path_rate: float | None) -> dict[str, nn.Module]:
    ours = build_model(OURS_SPEC)
    rate = ours.spec.drop_path_rate if drop_path_rate is None else drop_path_rate
    if drop_path_rate is not None:
        ours = build_model(ours.spec.evolve(drop_path_rate=rate))
    models: dict[str, nn.Module] = {"ours": ours}
    for path in variants:
        spec = build_model(path).spec.evolve(drop_path_rate=rate)
        models[f"ours:{path.stem}"] = build_model(spec)
    models[REFERENCE] = timm.create_model("coatnet_0_224", pretrained=False, drop_path_rate=rate)
    return models


def attention_flops(model: nn.Module, x: torch.Tensor) -> int:
    """fvcore MACs booked under SDPA alone: proves the handle sees the model's attention."""
    analysis = FlopCountAnalysis(model, (x,)).set_op_handle(SDPA_OP, sdpa_flop_jit)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    return int(analysis.by_operator().get("scaled_dot_product_attention", 0))


def cost(model: nn.Module, image: int) -> tuple[int, int, int]:
    model.eval()
    x = torch.zeros(1, 3, image, image)
    with torch.no_grad():
        return (
            sum(p.numel() for p in model.parameters()),
            count_flops(model, x),
            attention_flops(model, x),
        )


def with_memory_formats(models: dict[str, nn.Module], formats: str) -> dict[str, nn.Module]:
    """Each model in NCHW and/or channels-last (``name[cl]``, its own deep copy)."""
    out: dict[str, nn.Module] = {}
    for name, model in models.items():
        if formats in ("nchw", "both"):
            out[name] = model
        if formats in ("cl", "both"):
            twin = model if formats == "cl" else copy.deepcopy(model)
            out[f"{name}[cl]"] = twin.to(memory_format=torch.channels_last)
    return out


def channels_last(name: str) -> bool:
    return name.endswith("[cl]")


def forward_runner(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        with torch.inference_mode():
            model(x)

    return step


def train_runner(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step


def alternate(
    runners: dict[str, Callable[[], None]], rounds: int, iters: int, warmup: int, batch: int
) -> dict[str, list[float]]:
    """Images/s per round for each runner, the runners taking turns (order rotated per round)."""
    names = list(runners)
    for name in names:
        for _ in range(warmup):
            runners[name]()
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            for _ in range(iters):
                runners[name]()
            rates[name].append(batch * iters / (time.perf_counter() - start))
    return rates


def summarize(
    rates: dict[str, list[float]], reference: str
) -> dict[str, tuple[float, float, float]]:
    """name -> (median img/s, ratio of medians to timm, median of paired per-round ratios)."""
    ref = rates[reference]
    out = {}
    for name, values in rates.items():
        med = statistics.median(values)
        paired = statistics.median(v / r for v, r in zip(values, ref, strict=True))
        out[name] = (med, med / statistics.median(ref), paired)
    return out


def top_ops(step: Callable[[], None], iters: int, top: int) -> list[tuple[str, float, float, int]]:
    """(op, self CPU ms per iteration, share of all self time, calls per iteration)."""
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(iters):
            step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [
        (
            e.key,
            e.self_cpu_time_total / 1e3 / iters,
            e.self_cpu_time_total / total,
            e.count // iters,
        )
        for e in events[:top]
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--forward-iters", type=int, default=3)
    parser.add_argument("--train-iters", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--variant",
        type=Path,
        action="append",
        default=None,
        help=f"extra spec(s) of ours to race (default: {VARIANT_SPEC.relative_to(ROOT)})",
    )
    parser.add_argument("--no-variant", action="store_true", help="race only ours and timm")
    parser.add_argument(
        "--drop-path-rate",
        type=float,
        default=None,
        help="for every model (default: our spec's, given to timm too)",
    )
    parser.add_argument(
        "--memory-format",
        choices=("nchw", "cl", "both"),
        default="both",
        help="race every model in NCHW, channels-last ([cl]) or both (default)",
    )
    parser.add_argument("--profile", action="store_true", help="also list top ops by self time")
    parser.add_argument("--profile-iters", type=int, default=2)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    variants = [] if args.no_variant else (args.variant or [VARIANT_SPEC])
    base = make_models(variants, args.drop_path_rate)
    costs = {name: cost(model, args.image_size) for name, model in base.items()}
    models = with_memory_formats(base, args.memory_format)
    costs = {name: costs[name.removesuffix("[cl]")] for name in models}
    reference = REFERENCE if REFERENCE in models else f"{REFERENCE}[cl]"

    x = torch.randn(args.batch, 3, args.image_size, args.image_size)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (args.batch,))
    inputs = {n: x_cl if channels_last(n) else x for n in models}
    for model in models.values():
        model.eval()
    fwd = alternate(
        {n: forward_runner(m, inputs[n]) for n, m in models.items()},
        args.rounds,
        args.forward_iters,
        args.warmup,
        args.batch,
    )
    for model in models.values():
        model.train()
    train_steps = {n: train_runner(m, inputs[n], y) for n, m in models.items()}
    train = alternate(train_steps, args.rounds, args.train_iters, args.warmup, args.batch)

    cmd = " ".join(
        [
            Path(sys.executable).relative_to(ROOT).as_posix()
            if Path(sys.executable).is_relative_to(ROOT)
            else sys.executable,
            "benchmarks/bench_vs_timm.py",
            *(argv if argv is not None else sys.argv[1:]),
        ]
    )
    print(
        f"### CoAtNet-0 vs timm `coatnet_0_224` on CPU, batch {args.batch}, "
        f"{args.image_size}x{args.image_size}\n"
    )
    print(
        f"- machine: {cpu_model()}, {os.cpu_count()} cores visible, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(
        f"- torch {torch.__version__}, timm {timm.__version__}, Python {platform.python_version()}"
    )
    print(f"- command: `{cmd}`")
    print(f"- load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(
        f"- {args.rounds} alternating rounds; each round {args.forward_iters} forward passes / "
        f"{args.train_iters} train steps per model, after {args.warmup} warm-up each"
    )
    print(
        f"- drop_path_rate {base['ours'].spec.drop_path_rate} for every model; "
        "train step = forward + cross-entropy + backward + AdamW step"
    )
    print(
        "- FLOPs: fvcore MACs per image at batch 1 via `coatnet_nas.profile.count_flops` "
        "(SDPA handle registered); attention = the part booked under SDPA; `[cl]` = model "
        "and input in channels-last; ratios are against plain NCHW timm\n"
    )

    ref_params, ref_flops, _ = costs[reference]
    fs, ts = summarize(fwd, reference), summarize(train, reference)
    print(
        "| model | params | vs timm | FLOPs (MACs) | vs timm | attention MACs | "
        "forward img/s | fwd ours/timm (paired) | train img/s | train ours/timm (paired) |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for name in models:
        params, flops, attn = costs[name]
        print(
            f"| {name} | {params:,} | {params / ref_params - 1:+.1%} | {flops / 1e9:.3f}G | "
            f"{flops / ref_flops - 1:+.1%} | {attn / 1e6:.1f}M | {fs[name][0]:.2f} | "
            f"{fs[name][1]:.3f} ({fs[name][2]:.3f}) | {ts[name][0]:.2f} | "
            f"{ts[name][1]:.3f} ({ts[name][2]:.3f}) |"
        )
    print("\nper-round img/s (forward; train):")
    for name in models:
        print(
            f"- {name}: {', '.join(f'{v:.2f}' for v in fwd[name])}; "
            f"{', '.join(f'{v:.2f}' for v in train[name])}"
        )

    if args.profile:
        for phase in ("forward", "train"):
            for name, model in models.items():
                if phase == "forward":
                    model.eval()
                    step = forward_runner(model, inputs[name])
                else:
                    model.train()
                    step = train_steps[name]
                rows = top_ops(step, args.profile_iters, args.top)
                print(f"\n#### {name}, {phase}: top ops by self CPU time (per iteration)\n")
                print("| op | self ms | share | calls |")
                print("|---|--:|--:|--:|")
                for op, ms, share, calls in rows:
                    print(f"| `{op}` | {ms:.1f} | {share:.1%} | {calls} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
