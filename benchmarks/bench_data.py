"""Data-path benchmarks: folder prepare throughput, proxy start-up, streaming full-res input.

    python benchmarks/bench_data.py [--root /tmp/coatnet-bench-jpegs] [--images 20000]

1. Prepare throughput of a 224 px JPEG folder into a 64 px cache: single-process plain Pillow
   (open + full decode + resize: the old ``folder.py`` path) vs ``--workers`` processes with each
   decoder, in alternating rounds on a sample, then one full prepare.
2. Start-up of ``prepare_data("folder:...", 64)`` from the prepared cache (the uncached path is
   the full prepare of step 1, or the old single-process decode at the single-process rate).
3. Streaming 224 px input (DataLoader workers decoding + kornia augmentation) images/s vs the
   train-step rate of CoAtNet-0 x0.25 at 224 on this CPU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from coatnet_nas.data.decode import decode_fitted

SPEC = Path(__file__).resolve().parents[1] / "specs" / "coatnet0.yaml"


def make_folder(root: Path, n: int, classes: int = 10) -> None:
    """Photo-like 224-300 px JPEGs (smooth fields plus noise), generated once."""
    if (root / ".complete").exists():
        return
    rng = np.random.default_rng(0)
    for i in range(n):
        c = i % classes
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
        h, w = 224, int(rng.integers(224, 301))
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        base = np.stack([x * (c + 1) / w * 120, y / h * 200, (x + y) / (h + w) * 255], -1)
        img = (base + rng.normal(0, 12, (h, w, 3))).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / f"c{c}" / f"{i:06d}.jpg", quality=90)
    (root / ".complete").write_text("ok")


def decode_rate(files: list[Path], decoder: str) -> float:
    start = time.perf_counter()
    for f in files:
        decode_fitted(f, (64, 64), decoder)
    return len(files) / (time.perf_counter() - start)


def bench_prepare(root: Path, rounds: int, sample: int, workers: int) -> None:
    from coatnet_nas.data.cache import prepare_folder

    files = sorted(root.rglob("*.jpg"))
    pick = files[:: max(1, len(files) // sample)][:sample]
    single = {d: [] for d in ("pillow", "draft", "simplejpeg")}
    for _ in range(rounds):  # alternate decoders within one process: noise hits all alike
        for d in single:
            single[d].append(decode_rate(pick, d))
    for d, rates in single.items():
        print(f"single-process {d:10s}: {np.median(rates):7.0f} images/s (median of {rounds})")
    parallel = {}
    for d in ("pillow", "simplejpeg"):
        os.environ["COATNET_CACHE"] = f"/tmp/coatnet-bench-cache-{d}"
        shutil.rmtree(os.environ["COATNET_CACHE"], ignore_errors=True)
        start = time.perf_counter()
        prepare_folder(root, (64, 64), workers=workers, decoder=d)
        parallel[d] = len(files) / (time.perf_counter() - start)
        print(
            f"prepare {len(files)} images, {workers} workers, {d:10s}: {parallel[d]:7.0f} images/s"
        )
    base = np.median(single["pillow"])
    print(
        f"speed-up vs single-process Pillow: parallel Pillow {parallel['pillow'] / base:.2f}x, "
        f"parallel simplejpeg {parallel['simplejpeg'] / base:.2f}x"
    )


def bench_startup(root: Path) -> None:
    from coatnet_nas.data import prepare_data

    os.environ["COATNET_CACHE"] = "/tmp/coatnet-bench-cache-simplejpeg"  # prepared above
    start = time.perf_counter()
    data = prepare_data(f"folder:{root}", 64)
    cached = time.perf_counter() - start
    start = time.perf_counter()
    prepare_data(f"folder:{root}", 64, memory_cap=1)
    mapped_s = time.perf_counter() - start
    print(
        f"start-up from the cache: {cached:.2f} s in memory ({len(data.train)} train), "
        f"{mapped_s:.2f} s memory-mapped"
    )


def bench_stream(root: Path, workers: int, batches: int) -> None:
    from coatnet_nas.data.stream import StreamingData
    from coatnet_nas.scaling import scale_spec
    from coatnet_nas.spec import load_spec
    from coatnet_nas.train import build_for_data

    stream = StreamingData.from_folder(root, 224, workers=workers, augment="trivial", mixup=0.2)
    start = None
    n = 0
    for i, (x, _y) in enumerate(stream.train_batches(64)):
        if i == 1:
            start, n = time.perf_counter(), 0  # skip worker start-up
        n += len(x)
        if i == batches:
            break
    rate = n / (time.perf_counter() - start)
    print(
        f"streaming 224 px, {workers} loader workers + kornia TrivialAugment/mixup: "
        f"{rate:.0f} images/s"
    )
    spec = scale_spec(load_spec(SPEC), 0.25)
    model = build_for_data(spec, stream)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randn(32, 3, 224, 224)
    y = torch.randint(0, 10, (32,))
    times = []
    for _ in range(4):
        t = time.perf_counter()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t)
    step_rate = 32 / np.median(times[1:])
    print(
        f"CoAtNet-0 x0.25 train step at 224, batch 32: {step_rate:.1f} images/s; "
        f"input/step ratio {rate / step_rate:.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, default=Path("/tmp/coatnet-bench-jpegs"))
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sample", type=int, default=400)
    parser.add_argument("--skip", nargs="*", default=[])
    args = parser.parse_args()
    make_folder(args.root, args.images)
    if "prepare" not in args.skip:
        bench_prepare(args.root, args.rounds, args.sample, args.workers)
    if "startup" not in args.skip:
        bench_startup(args.root)
    if "stream" not in args.skip:
        bench_stream(args.root, args.workers, batches=6)


if __name__ == "__main__":
    main()
