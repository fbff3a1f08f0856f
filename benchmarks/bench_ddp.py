"""DDP overhead on CPU and checkpoint cost for CoAtNet-0.

1. Training throughput of the same global batch as 1 process x 2 threads and as 2 gloo ranks x
   1 thread (``coatnet train --nproc 2``), alternating rounds in one script so that load from
   other work on the machine hits both alike. img/s is training images over training time
   (setup, spawning and evaluation excluded), as ``TrainResult.images_per_second``.
2. Writing and reading a full run-state checkpoint of CoAtNet-0 (224 px, 1000 classes: weights,
   AdamW moments, EMA) with ``torch.save`` + atomic rename and ``torch.load(weights_only=True)``.

Run: ``PYTHONPATH=. python benchmarks/bench_ddp.py [--rounds 2] [--steps 30]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from coatnet_nas._io import atomic_write
from coatnet_nas.builder import CoAtNet
from coatnet_nas.spec import load_spec
from coatnet_nas.train import ModelEma, TrainRecipe, make_optimizer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from machine import cpu_model  # noqa: E402


def _train(nproc: int, threads: int, steps: int, batch: int) -> dict:
    cmd = [
        sys.executable,
        "-c",
        "from coatnet_nas.cli import main; main()",
        "train",
        "specs/coatnet0.yaml",
        "--width-mult",
        "0.25",
        "--image-size",
        "32",
        "--dataset",
        "synthetic:3000",
        "--steps",
        str(steps),
        "--batch-size",
        str(batch),
        "--device",
        "cpu",
        "--threads",
        str(threads),
        "--precise-bn",
        "0",
        "--json",
        "--nproc",
        str(nproc),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout)


def _checkpoint_times() -> dict:
    model = CoAtNet(load_spec(ROOT / "specs/coatnet0.yaml"))
    optimizer = make_optimizer(model, TrainRecipe(), torch.device("cpu"))
    model(torch.randn(1, 3, 224, 224)).sum().backward()
    optimizer.step()  # moments exist, as in a real checkpoint
    ema = ModelEma(model, 0.9999)
    payload = {
        "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "train": {"ema": ema.state_dict(), "rng_cpu": torch.get_rng_state()},
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ck.pt"
        t0 = time.perf_counter()
        atomic_write(path, lambda t: torch.save(payload, t))
        write = time.perf_counter() - t0
        t0 = time.perf_counter()
        torch.load(path, weights_only=True)
        read = time.perf_counter() - t0
        size = path.stat().st_size
    params = sum(p.numel() for p in model.parameters())
    return {"params": params, "bytes": size, "write_s": write, "read_s": read}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()
    rates: dict[str, list[float]] = {"1 process x 2 threads": [], "2 ranks x 1 thread": []}
    for _ in range(args.rounds):
        for name, (nproc, threads) in zip(rates, ((1, 2), (2, 1)), strict=True):
            result = _train(nproc, threads, args.steps, args.batch_size)
            rates[name].append(result["images_per_second"])
    print(f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}")
    print(
        f"CoAtNet-0 x0.25 @ 32 px, global batch {args.batch_size}, {args.steps} steps/run, "
        f"{args.rounds} alternating rounds"
    )
    for name, values in rates.items():
        shown = ", ".join(f"{v:.0f}" for v in values)
        print(f"  {name}: {shown} img/s (median {sorted(values)[len(values) // 2]:.0f})")
    ck = _checkpoint_times()
    print(
        f"CoAtNet-0 @224 checkpoint ({ck['params'] / 1e6:.1f} M params, weights + AdamW + "
        f"EMA, {ck['bytes'] / 2**20:.0f} MiB): write {ck['write_s']:.2f} s, "
        f"read {ck['read_s']:.2f} s"
    )


if __name__ == "__main__":
    main()
