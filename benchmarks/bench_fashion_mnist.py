"""Acceptance run: a CoAtNet-0 proxy (width x0.25, 32x32) on Fashion-MNIST within 3 epochs.

Uses the library exactly as ``coatnet train`` does and prints val accuracy per epoch, wall time
and training throughput (one JSON object with ``--json``). Needs the dataset (Debian's
``dataset-fashion-mnist`` or ``coatnet data fetch fashion-mnist``).

    .venv/bin/python benchmarks/bench_fashion_mnist.py [--epochs 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from coatnet_nas.data import prepare_data
from coatnet_nas.scaling import scale_spec
from coatnet_nas.spec import load_spec
from coatnet_nas.train import EvalReport, Runtime, TrainRecipe, train_spec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--spec", default="specs/coatnet0.yaml")
    p.add_argument("--width-mult", type=float, default=0.25)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--epochs", type=float, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=TrainRecipe().lr)
    p.add_argument("--subset", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    t0 = time.perf_counter()
    data = prepare_data(
        "fashion-mnist", args.image_size, subset=args.subset, seed=args.seed, device=args.device
    )
    prep = time.perf_counter() - t0
    spec = scale_spec(load_spec(args.spec), args.width_mult)
    recipe = TrainRecipe(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
    runtime = Runtime(device=args.device, threads=args.threads)

    def show(r: EvalReport) -> None:
        if not args.json:
            print(
                f"epoch {r.epoch:.2f}  val {r.val_accuracy:.4f}  train loss {r.train_loss:.4f}  "
                f"train acc {r.train_accuracy:.4f}  {r.seconds:.0f}s",
                flush=True,
            )

    result = train_spec(spec, data, recipe, show, runtime=runtime, seed=args.seed)
    out = {
        "dataset": data.describe(),
        "data_prep_seconds": round(prep, 2),
        "spec": f"{spec.name} width x{args.width_mult} @ {args.image_size}",
        "machine": f"{platform.machine()}, {args.threads or torch.get_num_threads()} torch threads",
        **result.to_dict(),
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"{result.status}: val accuracy {result.val_accuracy:.4f} "
        f"(best {result.best_val_accuracy:.4f}) after {result.epochs:.2f} epochs, "
        f"{result.seconds:.1f}s wall, "
        f"{result.images_per_second:,.0f} img/s training, {result.params:,} params, "
        f"{result.flops:,} FLOPs; data prep {prep:.1f}s"
    )


if __name__ == "__main__":
    main()
