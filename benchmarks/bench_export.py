"""Export CoAtNet-0 and a C-T-T-T spec (224 px) and time them where they would be deployed.

For each spec: ``export_model`` to ONNX, TorchScript and a torch.export program (.pt2), each
checked against eager PyTorch on seeded random batches (max abs diff reported); then batch-1
latency with one thread of PyTorch eager, onnxruntime, TorchScript and the .pt2 program, one call
of each in turn (``alternating_latency``), median and IQR of ``--repeats`` after ``--warmup``.
Prints a markdown section for ``benchmarks/RESULTS.md``.

    python benchmarks/bench_export.py [--repeats 25] [--warmup 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import torch
from machine import cpu_model

from coatnet_nas.builder import build_model
from coatnet_nas.export import ExportFormat, alternating_latency, export_model, load_runner
from coatnet_nas.export.check import random_images
from coatnet_nas.presets import resolve_spec

SPECS = ("coatnet0", "layouts/cttt")


def bench(name: str, folder: Path, args: argparse.Namespace) -> tuple[list[str], list[str]]:
    spec = resolve_spec(name)
    torch.manual_seed(0)
    model = build_model(spec).eval()
    exports, runners = [], {}
    for fmt in ExportFormat:
        report = export_model(model, fmt, folder / f"{spec.name}{fmt.suffix}")
        exports.append(
            f"| {spec.name} ({spec.layout}) | {fmt.value} | {report.bytes / 1e6:.1f} MB | "
            f"{report.max_abs_diff:.2e} | {report.max_rel_diff:.2e} | {report.seconds:.1f} s |"
        )
        runners[fmt.value] = (fmt.runtime, load_runner(report.path, fmt, threads=args.threads))

    def eager(images: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(images)

    order = {"eager": ("torch", eager), **runners}
    images = random_images(1, spec.in_chans, spec.image_size)
    stats = alternating_latency(order, images, args.threads, args.repeats, args.warmup)
    base = stats["eager"].median_ms
    rows = [
        f"| {spec.name} ({spec.layout}) | {label} | {s.median_ms:.1f} | {s.q1_ms:.1f}–{s.q3_ms:.1f}"
        f" | {base / s.median_ms:.2f}× |"
        for label, s in (
            ("PyTorch eager", stats["eager"]),
            ("onnxruntime (ONNX)", stats["onnx"]),
            ("TorchScript", stats["torchscript"]),
            ("torch.export .pt2", stats["exported"]),
        )
    ]
    return exports, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import onnxruntime

    exports, latencies = [], []
    with tempfile.TemporaryDirectory(prefix="bench-export-") as folder:
        for name in SPECS:
            e, lat = bench(name, Path(folder), args)
            exports += e
            latencies += lat
    print(
        f"Machine: {cpu_model()}, {os.cpu_count()} cores (shared), Python "
        f"{platform.python_version()}, torch {torch.__version__}, onnxruntime "
        f"{onnxruntime.__version__}; batch 1, {args.threads} thread(s), 224x224, "
        f"median of {args.repeats} after {args.warmup} warm-up, runtimes alternating.\n"
    )
    print(
        "| spec | format | size | max abs diff | max rel diff (of output scale) | export + check |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(exports))
    print()
    print("| spec | runtime | median ms | IQR ms | speed vs eager |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(latencies))


if __name__ == "__main__":
    main()
