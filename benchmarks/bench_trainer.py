"""Trainer overhead: ``train_model`` throughput vs a bare hand-written loop, in one process.

Same model (fresh copies of one initialization), same batches (the same seeded ProxyData
iterator: gather, crop/flip, normalize), same AdamW; the bare loop has no schedule, clipping,
accounting, budget checks or callbacks. Runs alternate (and swap order every round) so that
machine load hits both alike; the ratio of medians is reported.

    .venv/bin/python benchmarks/bench_trainer.py [--steps 60] [--rounds 5] [--threads N]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

from coatnet_nas.data import Split, prepare_data
from coatnet_nas.data.sources import find_dataset
from coatnet_nas.scaling import scale_spec
from coatnet_nas.spec import load_spec
from coatnet_nas.train import Runtime, TrainRecipe, build_for_data, param_groups, train_model


def bare_loop(model, data, steps: int, batch_size: int, seed: int, fused: bool) -> float:
    """Images/second of the minimal loop: forward, loss, backward, AdamW step."""
    start = time.perf_counter()
    kwargs = {"fused": True} if fused else {}
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-3, **kwargs)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    done = 0
    while done < steps:
        for x, y in data.train_batches(batch_size, generator=gen):
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                break
    return steps * batch_size / (time.perf_counter() - start)


def trainer(model, data, steps: int, batch_size: int, seed: int) -> float:
    """Images/second of the whole ``train_model`` call (setup and final evaluation included)."""
    recipe = TrainRecipe(epochs=None, steps=steps, batch_size=batch_size)
    start = time.perf_counter()
    result = train_model(model, data, recipe, runtime=Runtime(device="cpu"), seed=seed)
    assert result.status == "ok", result.reason
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--spec", default="specs/coatnet0.yaml")
    p.add_argument(
        "--dataset", default=None, help="default: fashion-mnist if installed, else synthetic"
    )
    p.add_argument("--width-mult", type=float, default=0.25)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch threads for both loops")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    name = args.dataset or ("fashion-mnist" if find_dataset("fashion-mnist")[0] else "synthetic")
    data = prepare_data(name, args.image_size, subset=0.2)
    data = replace(data, val=Split(data.val.images[:128], data.val.labels[:128]))  # eval ~free
    spec = scale_spec(load_spec(args.spec), args.width_mult)
    base = build_for_data(spec, data)
    runs = {
        "bare (default AdamW)": lambda m: bare_loop(m, data, args.steps, args.batch_size, 0, False),
        "bare (fused AdamW)": lambda m: bare_loop(m, data, args.steps, args.batch_size, 0, True),
        "train_model": lambda m: trainer(m, data, args.steps, args.batch_size, 0),
    }
    for fn in runs.values():  # warm-up: allocator, oneDNN primitives
        fn(copy.deepcopy(base))
    rates: dict[str, list[float]] = {k: [] for k in runs}
    order = list(runs)
    for r in range(args.rounds):
        for key in order if r % 2 == 0 else order[::-1]:
            rates[key].append(runs[key](copy.deepcopy(base)))
    med = {k: statistics.median(v) for k, v in rates.items()}
    summary = {
        "dataset": data.name,
        "spec": f"{spec.name} x{args.width_mult} @ {args.image_size}",
        "batch_size": args.batch_size,
        "steps_per_run": args.steps,
        "rounds": args.rounds,
        "threads": torch.get_num_threads(),
        "images_per_second": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        "median_images_per_second": {k: round(v, 1) for k, v in med.items()},
        "ratio_vs_bare_default": round(med["train_model"] / med["bare (default AdamW)"], 3),
        "ratio_vs_bare_fused": round(med["train_model"] / med["bare (fused AdamW)"], 3),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    for k, v in rates.items():
        print(f"{k:22s} median {med[k]:8.1f} img/s   runs {[round(x) for x in v]}")
    print(f"train_model / bare (default AdamW) = {summary['ratio_vs_bare_default']:.3f}")
    print(f"train_model / bare (fused AdamW)   = {summary['ratio_vs_bare_fused']:.3f}")


if __name__ == "__main__":
    main()
