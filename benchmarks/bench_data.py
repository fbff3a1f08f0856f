"""Data-path benchmarks: folder prepare throughput, proxy start-up, streaming full-res input.

    python benchmarks/bench_data.py [--root /tmp/coatnet-bench-jpegs] [--images 20000]

1. Prepare throughput of a 224 px JPEG folder (20k files by default) into a 64 px cache, all
   variants over the whole folder in alternating rounds: single-process plain Pillow (open +
   full decode + resize: the old ``folder.py`` path, the reference) vs ``prepare_folder`` with 1
   and ``--workers`` processes, with Pillow and with simplejpeg's reduced-size decode. Each line
   also says the cores the run got (CPU s / wall s) and the load average, and each round starts
   with the 2-process speed-up of pure CPU work at that moment (what the machine allows).
2. Start-up of ``prepare_data("folder:...", 64)``: first run (prepare + load), from the cache
   (in memory and memory-mapped), and the old path (single-process decode on every run).
3. Streaming 224 px input (DataLoader workers decoding + kornia augmentation) images/s vs the
   train-step rate of CoAtNet-0 x0.25 at 224 on this CPU.

About 6-8 minutes on 2 idle cores for 20k images (generating the folder once adds ~2 min).
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
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


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the pool's workers)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(work) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, 1-min load average before) of ``work()``."""
    load = os.getloadavg()[0]
    cpu, start = _cpu_seconds(), time.perf_counter()
    work()
    return time.perf_counter() - start, _cpu_seconds() - cpu, load


def single_pillow(files: list[Path]) -> None:
    """The reference: one process, Pillow open + full decode + resize, rows into one array."""
    out = np.empty((len(files), 3, 64, 64), dtype=np.uint8)
    for i, f in enumerate(files):
        out[i] = decode_fitted(f, (64, 64), "pillow")


def spin_ceiling() -> tuple[float, float]:
    """Pure-Python CPU work, 1 process twice vs 2 processes at once: the cores really free now."""
    import multiprocessing

    n = 4_000_000
    start = time.perf_counter()
    _spin(n), _spin(n)
    serial = time.perf_counter() - start
    with multiprocessing.get_context("fork").Pool(2) as pool:
        start = time.perf_counter()
        pool.map(_spin, [n, n])
        parallel = time.perf_counter() - start
    return serial / parallel, os.getloadavg()[0]


def _spin(n: int) -> int:
    x = 0
    for i in range(n):
        x += i * i
    return x


def bench_prepare(root: Path, rounds: int, workers: int) -> None:
    """Alternating rounds over the whole folder: reference, then prepare with 1 and K workers.

    Every variant decodes all files of the same (page-cache-warm) folder into 64 px rows, so
    the numbers are like for like; CPU seconds / wall seconds is the cores a run actually got
    (on a shared machine this, not the code, often caps the speed-up).
    """
    from coatnet_nas.data.cache import prepare_folder

    files = sorted(root.rglob("*.jpg"))
    for f in files:
        f.read_bytes()  # warm the page cache once, for every variant alike
    cache = Path("/tmp/coatnet-bench-cache-prepare")
    os.environ["COATNET_CACHE"] = str(cache)

    def prepare(w: int, decoder: str) -> None:
        shutil.rmtree(cache, ignore_errors=True)
        prepare_folder(root, (64, 64), workers=w, decoder=decoder)

    variants = {"single-process Pillow (reference)": lambda: single_pillow(files)}
    for decoder in ("pillow", "simplejpeg"):
        for w in sorted({1, workers}):
            variants[f"prepare {w} worker(s), {decoder}"] = functools.partial(prepare, w, decoder)
    runs: dict[str, list[tuple[float, float, float]]] = {k: [] for k in variants}
    for r in range(rounds):
        ceiling, load = spin_ceiling()
        print(f"round {r + 1}: 2-process CPU ceiling now {ceiling:.2f}x (load {load:.2f})")
        for name, work in variants.items():
            wall, cpu, load = _timed(work)
            runs[name].append((wall, cpu, load))
            print(
                f"  {name:40s} {len(files) / wall:6.0f} img/s  {wall:6.1f} s wall  "
                f"{cpu / wall:4.2f} cores  load {load:.2f}",
                flush=True,
            )
    reference = np.median([len(files) / w for w, _, _ in runs["single-process Pillow (reference)"]])
    print(f"median over {rounds} round(s), {len(files)} files, speed-up vs the reference:")
    for name, values in runs.items():
        rate = np.median([len(files) / w for w, _, _ in values])
        per_image = np.median([c / len(files) * 1e3 for _, c, _ in values])
        print(
            f"  {name:40s} {rate:6.0f} img/s  {rate / reference:5.2f}x  {per_image:.2f} ms CPU/img"
        )


def bench_startup(root: Path) -> None:
    from coatnet_nas.data import prepare_data

    os.environ["COATNET_CACHE"] = "/tmp/coatnet-bench-cache-startup"
    shutil.rmtree(os.environ["COATNET_CACHE"], ignore_errors=True)
    start = time.perf_counter()
    prepare_data(f"folder:{root}", 64)  # the first run on a folder: prepares, then loads
    first = time.perf_counter() - start
    start = time.perf_counter()
    data = prepare_data(f"folder:{root}", 64)
    cached = time.perf_counter() - start
    start = time.perf_counter()
    prepare_data(f"folder:{root}", 64, memory_cap=1)
    mapped_s = time.perf_counter() - start
    files = sorted(root.rglob("*.jpg"))
    old = _timed(lambda: single_pillow(files))[0]  # what every run on a folder used to do
    print(
        f"start-up of prepare_data('folder:...', 64): first run (prepare + load) {first:.1f} s; "
        f"from the cache {cached:.2f} s in memory ({len(data.train)} train), {mapped_s:.2f} s "
        f"memory-mapped; the old folder path (single-process Pillow decode each run) {old:.1f} s"
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
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip", nargs="*", default=[])
    args = parser.parse_args()
    make_folder(args.root, args.images)
    if "prepare" not in args.skip:
        bench_prepare(args.root, args.rounds, args.workers)
    if "startup" not in args.skip:
        bench_startup(args.root)
    if "stream" not in args.skip:
        bench_stream(args.root, args.workers, batches=6)


if __name__ == "__main__":
    main()
