"""One run of a comparison, and the data it trains on.

The data set is loaded once per process; a regime is a seeded, nested subset of its training
split, and all regimes share one validation split. After training, each run measures a *clean*
train loss and accuracy (eval mode, no augmentation, no label smoothing) on a fixed sample of its
own training data: the trainer's running loss mixes augmentation, stochastic depth and label
smoothing into the number, which would blur "how low can this layout drive the loss" (capacity).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch

from coatnet_nas.compare.clean import clean_metrics
from coatnet_nas.compare.config import CompareConfig, CompareRecipe, Regime
from coatnet_nas.data import ProxyData, Split, load_raw, parse_name, prepare_data
from coatnet_nas.spec import ModelSpec, spec_from_dict
from coatnet_nas.threads import cpu_threads
from coatnet_nas.train import ProgressInfo, Runtime, build_for_data, train_model


@dataclass(frozen=True)
class Job:
    """One run: a fitted layout trained on one regime with one seed.

    ``kind`` is ``fit`` (the fixed-budget run of a regime) or ``capacity`` (trained to a plateau
    on a fixed set drawn from ``regime``; ``settings`` are its options, stored with its record,
    and a stored record with other settings is run again).
    """

    key: str
    layout: str
    regime: Regime
    seed: int
    spec: dict[str, Any]
    kind: str = "fit"
    settings: dict[str, Any] | None = None

    def matches(self, record: dict[str, Any] | None) -> bool:
        """Whether a stored record is this run's (same fitted spec and settings)."""
        if not record or record.get("spec") != self.spec:
            return False
        return record.get("capacity") == self.settings


@dataclass
class CompareEvent:
    """Progress of a comparison, for displays.

    ``plan`` comes once, before any run (``total`` runs to do now, ``resumed`` already stored);
    then ``start``, throttled ``progress``, and ``done`` or ``error`` for every run.
    """

    kind: str
    job: Job | None = None
    record: dict[str, Any] | None = None
    info: ProgressInfo | None = None
    message: str | None = None
    worker: int = 0
    total: int = 0
    resumed: int = 0


@dataclass(frozen=True)
class SizeChoice:
    """A default training size and why: the data's native size rounded up to the total stride."""

    size: tuple[int, int]
    native: tuple[int, int] | None  # None: the data has no size of its own (image folders)
    stride: int
    dataset: str = ""

    def reason(self) -> str:
        """One sentence for the user: which size, and why."""
        h, w = self.size
        if self.native is None:
            return f"image size {h}x{w}: image folders are resized to the base spec's size"
        how = "already" if self.native == self.size else "rounded up to"
        nh, nw = self.native
        return (
            f"image size {h}x{w}: {self.dataset} images are {nh}x{nw}, {how} a multiple of the "
            f"layouts' total stride {self.stride}"
        )


def natural_image_size(base: ModelSpec, dataset: str, data_dir: str | None = None) -> SizeChoice:
    """The smallest size >= the data's native one that ``base``'s total stride divides.

    Proxy data sets are 28 or 32 px; training them at the base spec's 224 px would cost ~50x the
    compute for upsampled pixels. Image folders have no single native size, so they keep the
    base's. Reading the data here is not wasted: sources are cached per process.
    """
    stride = base.total_stride
    kind, _ = parse_name(dataset)
    if kind == "folder":
        return SizeChoice(base.image_size, None, stride, dataset)
    h, w = (int(v) for v in load_raw(dataset, data_dir).train_images.shape[-2:])
    size = (math.ceil(h / stride) * stride, math.ceil(w / stride) * stride)
    return SizeChoice(size, (h, w), stride, dataset)


def load_data(config: CompareConfig, device: str | torch.device = "cpu") -> ProxyData:
    """The full training pool and the shared validation split at the training image size."""
    return prepare_data(
        config.dataset,
        config.train_size,
        subset=1.0,
        val_fraction=config.val_fraction,
        seed=config.data_seed,
        device=device,
        data_dir=config.data_dir,
        in_chans=config.base.in_chans,
        holdout=config.holdout.value,
    )


def regime_data(data: ProxyData, regime: Regime, seed: int = 0) -> ProxyData:
    """``data`` with a seeded ``regime.fraction`` of its training split; nested across fractions.

    Normalization statistics stay those of the full pool, so every regime sees the same inputs.
    """
    n = len(data.train)
    order = regime_positions(n, regime, seed)
    if len(order) == n:
        return data
    idx = torch.from_numpy(order).to(data.train.labels.device)
    return replace(data, train=Split(data.train.images[idx], data.train.labels[idx]))


def regime_positions(n: int, regime: Regime, seed: int = 0) -> np.ndarray:
    """Sorted positions in a training split of ``n`` images that ``regime`` keeps."""
    keep = min(n, max(2, round(n * regime.fraction)))
    if keep == n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:keep])


@torch.inference_mode()
def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def run_job(
    job: Job,
    data: ProxyData,
    recipe: CompareRecipe,
    *,
    data_seed: int = 0,
    device: str = "cpu",
    threads: int | None = None,
    progress: Callable[[ProgressInfo], None] | None = None,
) -> dict[str, Any]:
    """Train one run and return its record (JSON-ready; non-finite numbers become None)."""
    spec = spec_from_dict(job.spec, source=job.layout)
    sub = regime_data(data, job.regime, data_seed)
    planned = recipe.planned_steps(len(sub.train))
    train = recipe.train.evolve(eval_every=planned)  # one evaluation, at the end
    runtime = Runtime(device=device, threads=threads)
    with cpu_threads(threads):
        model = build_for_data(spec, sub, drop_path_rate=train.drop_path_rate, seed=job.seed)
        result = train_model(model, sub, train, runtime=runtime, seed=job.seed, progress=progress)
        if result.status == "diverged":
            loss, accuracy = float("nan"), float("nan")
        else:
            loss, accuracy = clean_metrics(model, sub, recipe.train_eval_images)
    val = result.val_accuracy if result.status != "diverged" else float("nan")
    return {
        "key": job.key,
        "kind": "fit",
        "layout": job.layout,
        "regime": job.regime.name,
        "fraction": job.regime.fraction,
        "seed": job.seed,
        "status": result.status,
        "reason": result.reason,
        "params": result.params,
        "flops": result.flops,
        "train_images": len(sub.train),
        "val_images": len(sub.val),
        "train_loss": _finite(loss),
        "train_accuracy": _finite(accuracy),
        "val_accuracy": _finite(val),
        "gap": _finite(accuracy - val),
        "running_train_loss": _finite(result.train_loss),
        "steps": result.steps,
        "epochs": round(result.epochs, 4),
        "seconds": round(result.seconds, 2),
        "images_per_second": round(result.images_per_second, 1),
        "device": result.device,
        "spec": job.spec,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
