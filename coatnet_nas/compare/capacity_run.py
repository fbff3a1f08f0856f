"""Capacity runs as jobs of a comparison: where they train, on what, and one run.

The capacity resolution is the smallest square side (at least the comparison's own) at which
every T stage of every layout sees ``tokens`` x ``tokens`` (:func:`capacity_size`). The layouts
are fitted again there, to the comparison's budget scaled by the pixel count: convolutions cost
the same per pixel, so conv layouts keep their shape, and ViT keeps its /16 token grid instead
of attending over 16x more tokens. The fixed training set is ``images`` images of the largest
regime, drawn with the data seed and resized from the source once per process.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch

from coatnet_nas.compare.capacity import CapacityOptions, min_size_for_tokens, train_to_plateau
from coatnet_nas.compare.config import CompareConfig, Regime
from coatnet_nas.compare.job import Job, regime_positions, run_job
from coatnet_nas.compare.layouts import Entrant, Layout, fit_layouts, instantiate
from coatnet_nas.cost import estimate_cost
from coatnet_nas.data import ProxyData, Split, load_raw
from coatnet_nas.data.tensors import adapt_images, split_indices
from coatnet_nas.errors import CoatnetError
from coatnet_nas.spec import ModelSpec, spec_from_dict
from coatnet_nas.threads import cpu_threads
from coatnet_nas.train import ProgressInfo, Runtime, build_for_data

CAPACITY = "capacity"  # the kind of a capacity job, and the regime part of its key


def capacity_size(
    base: ModelSpec, layouts: list[Layout], size: tuple[int, int], tokens: int = 4
) -> tuple[int, int]:
    """The square size every T stage of every (non-ViT) layout needs, never below ``size``."""
    need = [min_size_for_tokens(instantiate(base, lay), tokens) for lay in layouts if not lay.vit]
    side = max([*need, *size])
    stride = base.total_stride
    side = math.ceil(side / stride) * stride
    return side, side


def largest_regime(config: CompareConfig) -> Regime:
    return max(config.regimes, key=lambda r: r.fraction)


def capacity_key(layout: str, seed: int) -> str:
    return f"{layout}|{CAPACITY}|seed={seed}"


def plan_capacity(
    config: CompareConfig, base: ModelSpec, layouts: list[Layout], budget: int
) -> list[Job]:
    """One capacity job per (seed, layout), seed-major like the fit runs; none when disabled."""
    options = config.capacity
    if not options.enabled:
        return []
    size = capacity_size(base, layouts, config.train_size, options.tokens)
    entrants = capacity_entrants(base, layouts, budget, size, config)
    regime = largest_regime(config)
    settings = {**options.to_dict(), "regime": regime.label, "image_size": list(size)}
    specs = {e.name: json.loads(json.dumps(e.spec.to_dict())) for e in entrants}
    return [
        Job(capacity_key(e.name, seed), e.name, regime, seed, specs[e.name], CAPACITY, settings)
        for seed in config.seeds
        for e in entrants
    ]


def capacity_entrants(
    base: ModelSpec,
    layouts: list[Layout],
    budget: int,
    size: tuple[int, int],
    config: CompareConfig,
) -> list[Entrant]:
    """The layouts fitted at ``size`` to ``budget`` scaled by the pixel count."""
    h, w = config.train_size
    scaled = round(budget * size[0] * size[1] / (h * w))
    try:
        return fit_layouts(base.with_image_size(size), layouts, scaled, config.vary.value)
    except CoatnetError as exc:
        raise CoatnetError(
            f"capacity runs at {size[0]}x{size[1]} (where every T stage sees enough tokens): "
            f"{exc}; measure without them (capacity off) or change the budget.",
            param="capacity",
        ) from None


_CACHE: dict[tuple, ProxyData] = {}


def capacity_data(data: ProxyData, config: CompareConfig, job: Job) -> ProxyData:
    """The fixed training set of ``job`` (cached per process), with no validation split."""
    settings = job.settings or {}
    size = tuple(settings["image_size"])
    images = int(settings["images"])
    key = (id(data), config.dataset, config.data_seed, job.regime, size, images)
    if key not in _CACHE:
        _CACHE.clear()  # one fixed set per process at a time
        _CACHE[key] = _build(data, config, job.regime, size, images)  # type: ignore[arg-type]
    return _CACHE[key]


def _build(
    data: ProxyData, config: CompareConfig, regime: Regime, size: tuple[int, int], images: int
) -> ProxyData:
    raw = load_raw(config.dataset, config.data_dir, config.train_size)
    train_rows, _ = split_indices(
        len(raw.train_labels), 1.0, config.val_fraction, config.data_seed, config.holdout.value
    )
    positions = regime_positions(len(train_rows), regime, config.data_seed)
    pick = np.random.default_rng(config.data_seed + 1).permutation(positions)[:images]
    rows = train_rows[np.sort(pick)]
    device = data.device
    pixels = adapt_images(raw.train_images[rows], data.in_chans, size, device)
    labels = torch.from_numpy(np.asarray(raw.train_labels[rows]).copy()).to(device)
    empty = Split(pixels[:0], labels[:0])
    return replace(
        data, image_size=size, train=Split(pixels, labels), val=empty, crop_padding=0, flip=False
    )


def run_capacity_job(
    job: Job,
    data: ProxyData,
    config: CompareConfig,
    *,
    device: str = "cpu",
    threads: int | None = None,
    progress: Callable[[ProgressInfo], None] | None = None,
) -> dict[str, Any]:
    """Train one layout to a plateau on the fixed set; its record (JSON-ready)."""
    options = CapacityOptions(**{k: v for k, v in (job.settings or {}).items() if k in _FIELDS})
    sub = capacity_data(data, config, job)
    start = time.perf_counter()
    spec = spec_from_dict(job.spec, source=job.layout)
    with cpu_threads(threads):
        model = build_for_data(spec, sub, drop_path_rate=0.0, seed=job.seed)
        result = train_to_plateau(
            model,
            sub,
            options.plateau,
            lr=options.lr,
            batch_size=min(options.batch_size, len(sub.train)),
            seed=job.seed,
            runtime=Runtime(device=device, threads=threads),
            progress=progress,
        )
    cost = estimate_cost(spec)
    loss = result.capacity_loss
    finite = math.isfinite(loss)
    last = result.curve[-1][1] if result.curve else math.nan
    diverged = not math.isfinite(last)
    status = "diverged" if diverged else "plateaued" if result.plateaued else "capped"
    return {
        "key": job.key,
        "kind": CAPACITY,
        "layout": job.layout,
        "regime": job.regime.name,
        "fraction": job.regime.fraction,
        "seed": job.seed,
        "status": status,
        "params": cost.params,
        "flops": cost.flops,
        "image_size": list(sub.image_size),
        "train_images": len(sub.train),
        "capacity_loss": loss if finite and not diverged else None,  # like fit runs' means
        "plateaued": result.plateaued and not diverged,
        "steps": result.steps,
        "curve": [[s, v if math.isfinite(v) else None] for s, v in result.curve],
        "seconds": round(time.perf_counter() - start, 2),
        "device": device,
        "spec": job.spec,
        "capacity": job.settings,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


_FIELDS = set(CapacityOptions.__dataclass_fields__)


def execute(
    job: Job,
    data: ProxyData,
    config: CompareConfig,
    *,
    device: str = "cpu",
    threads: int | None = None,
    progress: Callable[[ProgressInfo], None] | None = None,
) -> dict[str, Any]:
    """Run any job of a comparison (fit or capacity) and return its record."""
    if job.kind == CAPACITY:
        return run_capacity_job(
            job, data, config, device=device, threads=threads, progress=progress
        )
    return run_job(
        job,
        data,
        config.recipe,
        data_seed=config.data_seed,
        device=device,
        threads=threads,
        progress=progress,
    )
