"""What the checkpoint checksum costs: CoAtNet-0 with AdamW state, saved and loaded with and
without the SHA-256 digest that lets a damaged file be refused (issue 23).

Times an atomic ``torch.save`` and ``torch.load`` alone against ``save_payload``/
``read_payload`` (digest computed on save, checked on load), median of ``--repeats``; the
writes alternate, so page-cache writeback falls on both alike. Prints a markdown
section for ``benchmarks/RESULTS.md``.

    python benchmarks/bench_checkpoint_digest.py [--repeats 5] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from machine import cpu_model

from coatnet_nas._io import atomic_write
from coatnet_nas.builder import build_model
from coatnet_nas.presets import resolve_spec
from coatnet_nas.train.checkpoint import FORMAT, payload_digest, read_payload, save_payload


def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_model(resolve_spec("coatnet0"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(1, 3, 224, 224)).sum().backward()
    optimizer.step()  # allocates the moments: a real checkpoint's size
    payload = {
        "format": FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
    }
    folder = Path(tempfile.mkdtemp(dir=args.dir, prefix="coatnet-digest-"))
    plain, checked = folder / "plain.pt", folder / "checked.pt"
    samples: dict[str, list[float]] = {}
    for _ in range(args.repeats):  # interleaved: writeback noise hits both writers alike
        for name, fn in (
            (
                "torch.save, atomic (temporary + rename), no digest",
                lambda: atomic_write(plain, lambda tmp: torch.save(payload, tmp)),
            ),
            ("save_payload (digest + atomic save)", lambda: save_payload(checked, payload)),
        ):
            samples.setdefault(name, []).append(_median_s(fn, 1))
    rows = {k: statistics.median(v) for k, v in samples.items()}
    rows |= {
        "digest alone": _median_s(lambda: payload_digest(payload), args.repeats),
        "torch.load(weights_only=True)": _median_s(
            lambda: torch.load(plain, weights_only=True), args.repeats
        ),
        "read_payload (load + verify)": _median_s(lambda: read_payload(checked), args.repeats),
    }
    size = checked.stat().st_size
    print("## Checkpoint checksum cost (issue 23, `bench_checkpoint_digest.py`)\n")
    print(
        f"Machine: {cpu_model()}, {torch.get_num_threads()} torch threads, Python "
        f"{platform.python_version()}, torch {torch.__version__}; files in {args.dir}."
    )
    print(
        f"CoAtNet-0 weights + AdamW moments: {size / 1e6:.0f} MB per checkpoint. "
        f"Median of {args.repeats}.\n"
    )
    print("| step | seconds |\n| --- | ---: |")
    for name, seconds in rows.items():
        print(f"| {name} | {seconds:.2f} |")
    for path in (plain, checked):
        path.unlink(missing_ok=True)
    folder.rmdir()


if __name__ == "__main__":
    main()
