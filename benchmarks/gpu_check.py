"""CUDA check of the training path: CoAtNet-0 @224 img/s, and a 2-step DDP run on 2+ GPUs.

Measures forward and train-step throughput at batch 64-256 in fp32, bf16 autocast,
channels-last and torch.compile (each case after warm-up, synchronized timing), then, when more
than one GPU is visible, runs ``coatnet train --nproc N`` for 2 steps (NCCL). Without CUDA it
says so and exits 0, so it can sit in any CI. Run: ``PYTHONPATH=. python benchmarks/gpu_check.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


def _rate(step, batch: int, iters: int = 10) -> float:
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    torch.cuda.synchronize()
    return batch * iters / (time.perf_counter() - t0)


def _case(batch: int, bf16: bool, channels_last: bool, compiled: bool) -> tuple[float, float]:
    from coatnet_nas.builder import CoAtNet
    from coatnet_nas.spec import load_spec

    model = CoAtNet(load_spec(ROOT / "specs/coatnet0.yaml")).cuda()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    forward = torch.compile(model) if compiled else model
    x = torch.randn(batch, 3, 224, 224, device="cuda").contiguous(memory_format=fmt)
    y = torch.randint(0, 1000, (batch,), device="cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    dtype = torch.bfloat16 if bf16 else torch.float32

    def train() -> None:
        with torch.autocast("cuda", dtype=dtype, enabled=bf16):
            loss = F.cross_entropy(forward(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @torch.inference_mode()
    def infer() -> None:
        with torch.autocast("cuda", dtype=dtype, enabled=bf16):
            forward(x)

    return _rate(train, batch), _rate(infer, batch)


def _ddp(gpus: int) -> dict:
    cmd = [
        sys.executable,
        "-c",
        "from coatnet_nas.cli import main; main()",
        "train",
        "specs/coatnet0.yaml",
        "--width-mult",
        "0.25",
        "--image-size",
        "64",
        "--dataset",
        "synthetic:2048",
        "--steps",
        "2",
        "--batch-size",
        str(32 * gpus),
        "--device",
        "cuda",
        "--nproc",
        str(gpus),
        "--json",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    if out.returncode:
        raise SystemExit(f"DDP run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)


def main() -> None:
    if not torch.cuda.is_available():
        print(
            f"gpu_check: skipped, no CUDA device (torch {torch.__version__}, "
            f"built {'with' if torch.version.cuda else 'without'} CUDA)."
        )
        return
    gpus = torch.cuda.device_count()
    print(f"{torch.cuda.get_device_name()} x {gpus}, torch {torch.__version__}")
    print("batch  bf16  NHWC  compile  train img/s  forward img/s")
    for batch in (64, 128, 256):
        for bf16, nhwc, compiled in (
            (False, False, False),
            (True, False, False),
            (True, True, False),
            (True, True, True),
        ):
            train, infer = _case(batch, bf16, nhwc, compiled)
            print(f"{batch:5d}  {bf16!s:5} {nhwc!s:5} {compiled!s:8} {train:11.0f}  {infer:13.0f}")
            torch.cuda.empty_cache()
    if torch.cuda.device_count() > 1:
        result = _ddp(torch.cuda.device_count())
        print(
            f"DDP: {result['world_size']} ranks, {result['steps']} steps, status "
            f"{result['status']}, loss {result['train_loss']:.3f}"
        )
    else:
        print("DDP: skipped (one GPU visible)")


if __name__ == "__main__":
    main()
