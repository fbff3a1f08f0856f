"""Proxy datasets as tensors on the training device, split, resized and augmented in batches.

A search trains hundreds of short proxies, so data preparation happens once (resize, channel
adaptation, split, normalization statistics) and the hot loop only gathers a batch by index,
crops/flips it with batched tensor ops on the device and normalizes it; no per-sample Python.
Images stay ``uint8`` until batching, which keeps a whole Fashion-MNIST/CIFAR at 32x32 under
200 MB.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from coatnet_nas.data.devices import resolve_device
from coatnet_nas.data.mapped import MappedImages, adapt_images, memory_cap_bytes
from coatnet_nas.data.options import Holdout
from coatnet_nas.data.sources import Progress, RawData, load_raw
from coatnet_nas.errors import DataError

__all__ = ["ProxyData", "Split", "adapt_images", "prepare_data", "split_indices"]

Batch = tuple[torch.Tensor, torch.Tensor]
_CHUNK = 8192
_STATS_SAMPLE = 8192  # images read for the normalization statistics of a memory-mapped split


@dataclass(frozen=True, eq=False)  # tensors have no single truth value: compare by identity
class Split:
    """uint8 images ``(N, C, H, W)`` and int64 labels ``(N,)`` on one device.

    ``images`` is a device tensor, or :class:`~coatnet_nas.data.mapped.MappedImages` (rows of a
    memory map, read per batch) when the data set is larger than the memory cap; both index the
    same way (``images[idx]`` is a uint8 tensor on the device).
    """

    images: torch.Tensor | MappedImages
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device) -> Split:
        return Split(self.images.to(device), self.labels.to(device))


@dataclass(frozen=True, eq=False)
class ProxyData:
    """A prepared proxy dataset: train/val splits on ``device`` plus batch iterators.

    ``train_batches`` yields augmented (random crop with ``crop_padding`` pixels of zero padding
    when > 0, horizontal flip when ``flip``), normalized float batches; ``val_batches`` yields
    normalized, unaugmented ones.
    """

    name: str
    classes: tuple[str, ...]
    in_chans: int
    image_size: tuple[int, int]
    train: Split
    val: Split
    mean: torch.Tensor  # (C,) in uint8 pixel units
    std: torch.Tensor
    crop_padding: int = 0
    flip: bool = True
    source: str = ""
    seed: int = 0

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def device(self) -> torch.device:
        return self.train.labels.device

    @property
    def storage(self) -> Literal["memory", "memmap"]:
        """``memmap`` when batches are gathered from the prepared cache on disk, per batch."""
        return "memmap" if isinstance(self.train.images, MappedImages) else "memory"

    def to(self, device: str | torch.device) -> ProxyData:
        """The same data on another device (a no-op when already there)."""
        device = resolve_device(device)
        if device == self.device:
            return self
        return replace(
            self,
            train=self.train.to(device),
            val=self.val.to(device),
            mean=self.mean.to(device),
            std=self.std.to(device),
        )

    def steps_per_epoch(self, batch_size: int) -> int:
        """Full batches per epoch (the last partial batch is dropped, as in training)."""
        return max(1, len(self.train) // batch_size)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 -> float32, standardized with the training split's per-channel statistics."""
        scale = (1.0 / self.std).view(1, -1, 1, 1)
        shift = (-self.mean / self.std).view(1, -1, 1, 1)
        return images.float().mul_(scale).add_(shift)

    def augment(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Random crop (zero padding) and horizontal flip of a uint8 batch, all on its device."""
        b, c, h, w = images.shape
        dev = images.device
        p = self.crop_padding
        if p > 0:
            padded = F.pad(images, (p, p, p, p))
            offsets = torch.randint(0, 2 * p + 1, (2, b), device=dev, generator=generator)
            rows = (offsets[0, :, None] + torch.arange(h, device=dev))[:, None, :, None]
            cols = (offsets[1, :, None] + torch.arange(w, device=dev))[:, None, None, :]
            batch_idx = torch.arange(b, device=dev)[:, None, None, None]
            chan_idx = torch.arange(c, device=dev)[None, :, None, None]
            images = padded[batch_idx, chan_idx, rows, cols]
        if self.flip:
            flip = torch.rand(b, device=dev, generator=generator) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(3), images)
        return images

    def train_batches(
        self,
        batch_size: int,
        *,
        generator: torch.Generator | None = None,
        augment: bool = True,
    ) -> Iterator[Batch]:
        """One epoch of shuffled, augmented, normalized batches (partial last batch dropped)."""
        if generator is None:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(self.seed)
        n = len(self.train)
        order = torch.randperm(n, device=self.device, generator=generator)
        size = min(batch_size, n)
        for step in range(self.steps_per_epoch(size)):
            idx = order[step * size : (step + 1) * size]
            images = self.train.images[idx]
            if augment:
                images = self.augment(images, generator)
            yield self.normalize(images), self.train.labels[idx]

    def val_batches(self, batch_size: int = 512) -> Iterator[Batch]:
        """The validation split in order, normalized, unaugmented (last batch may be partial)."""
        for start in range(0, len(self.val), batch_size):
            end = start + batch_size
            yield self.normalize(self.val.images[start:end]), self.val.labels[start:end]

    def describe(self) -> dict:
        return describe_data(self)


def describe_data(data: ProxyData | Any) -> dict:
    """The summary every data source prints and records (a streaming source adds its own)."""
    h, w = data.image_size
    return {
        "name": data.name,
        "num_classes": data.num_classes,
        "in_chans": data.in_chans,
        "image_size": [h, w],
        "train": len(data.train),
        "val": len(data.val),
        "device": str(data.device),
        "source": data.source,
        "storage": data.storage,
    }


def _size(image_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        size = (image_size, image_size)
    else:
        size = tuple(int(v) for v in image_size)
    if len(size) != 2 or min(size) < 1:
        raise DataError(f"image_size must be a positive int or (H, W), got {image_size!r}.")
    return size  # type: ignore[return-value]


def _stats(images: torch.Tensor | MappedImages) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (pixel units) over a uint8 split, accumulated in float64.

    A memory-mapped split is estimated from a seeded sample of ``_STATS_SAMPLE`` images: a full
    pass would read the whole cache from disk before the first step, for a third-decimal change.
    """
    if isinstance(images, MappedImages) and len(images) > _STATS_SAMPLE:
        pick = np.sort(np.random.default_rng(0).choice(len(images), _STATS_SAMPLE, replace=False))
        images = images[pick]
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64, device=images.device)
    squares = torch.zeros_like(total)
    for start in range(0, len(images), 1024):  # float32 chunks (exact for 8-bit squares)
        x = images[start : start + 1024].to(torch.float32)
        total += x.sum(dim=(0, 2, 3), dtype=torch.float64)
        squares += x.square_().sum(dim=(0, 2, 3), dtype=torch.float64)
    count = max(1, len(images) * images.shape[2] * images.shape[3])
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt().clamp_min(1.0)
    return mean.float(), std.float()


def split_indices(
    n: int, subset: float, val_fraction: float, seed: int, holdout: Holdout | str
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, val) index arrays into the training pool; val empty when validation
    comes from the test set (``holdout="test"``)."""
    holdout = Holdout(holdout)
    order = np.random.default_rng(seed).permutation(n)
    keep = min(n, max(2, round(n * subset)))
    order = order[:keep]
    n_val = 0 if holdout is Holdout.TEST else min(keep - 1, max(1, round(keep * val_fraction)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def prepare_data(
    name: str,
    image_size: int | tuple[int, int],
    *,
    subset: float = 1.0,
    val_fraction: float = 0.1,
    seed: int = 0,
    device: str | torch.device = "cpu",
    data_dir: str | Path | None = None,
    in_chans: int = 3,
    holdout: Holdout | str = "split",
    crop_padding: int | None = 0,
    flip: bool = True,
    memory_cap: int | str | None = None,
    progress: Progress | None = None,
) -> ProxyData:
    """Load dataset ``name`` (see ``DATASETS``) as a :class:`ProxyData` on ``device``.

    ``val`` is a seeded ``val_fraction`` of the training pool (``holdout="split"``), or the
    dataset's official test split (``holdout="test"``). ``subset`` keeps a seeded fraction of
    the pool (and of the test split).

    Training batches are flipped by default but not cropped (``crop_padding=0``): random crops
    slow the short runs a search scores. Measured on Fashion-MNIST, CoAtNet-0 x0.25 at 32x32,
    3 epochs: 85.9% val with 4-pixel crops + flips, 87.9% with 2-pixel crops, 89.5% with flips
    only, 90.2% with neither. Pass e.g. ``crop_padding=image_size // 8`` for longer runs or
    small-data regimes, where the regularization pays off.

    Image folders are read from their prepared cache (decoded on first use; ``progress(done,
    total)`` reports that). When the selected images would take more than ``memory_cap`` bytes
    (default ``$COATNET_DATA_MEMORY_CAP`` or 4 GiB) and the source is memory-mapped, they stay
    on disk and each batch is read from the map (``storage == "memmap"``); below the cap they are
    loaded onto the device once, which is fastest.
    """
    from coatnet_nas.data.options import check_split

    holdout = check_split(subset, val_fraction, holdout).value  # type: ignore[assignment]
    if crop_padding is not None and crop_padding < 0:
        raise DataError(
            f"crop_padding must be >= 0 pixels, got {crop_padding}.", param="crop_padding"
        )
    if in_chans not in (1, 3):
        raise DataError(f"in_chans must be 1 or 3 for image datasets, got {in_chans}.")
    size = _size(image_size)
    dev = resolve_device(device)
    cap = memory_cap_bytes(memory_cap)
    raw = load_raw(name, data_dir, size, progress=progress)
    train_idx, val_idx = split_indices(len(raw.train_labels), subset, val_fraction, seed, holdout)
    if holdout == "test":
        val_src, val_rows = _test_rows(raw, subset, seed)
    else:
        val_src, val_rows = raw.train_images, val_idx
    n_bytes = (len(train_idx) + len(val_rows)) * in_chans * size[0] * size[1]
    mapped = isinstance(raw.train_images, np.memmap) and n_bytes > cap

    def split(images: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> Split:
        y = torch.from_numpy(labels[rows].copy()).to(dev)
        if mapped:
            return Split(MappedImages(images, rows, in_chans, size, dev), y)
        return Split(adapt_images(images[rows], in_chans, size, dev), y)

    train = split(raw.train_images, raw.train_labels, train_idx)
    val_labels = raw.test_labels if holdout == "test" else raw.train_labels
    val = split(val_src, val_labels, val_rows)  # type: ignore[arg-type]
    mean, std = _stats(train.images)
    pad = 0 if crop_padding is None else int(crop_padding)
    return ProxyData(
        name=raw.name,
        classes=raw.classes,
        in_chans=in_chans,
        image_size=size,
        train=train,
        val=val,
        mean=mean,
        std=std,
        crop_padding=pad,
        flip=flip,
        source=raw.source,
        seed=seed,
    )


def _test_rows(raw: RawData, subset: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The test images and the seeded subset of their rows to validate on."""
    if raw.test_images is None or raw.test_labels is None or not len(raw.test_labels):
        raise DataError(
            f"dataset {raw.name!r} at {raw.source} has no test split; use holdout='split' "
            "(a seeded validation fraction of the training data) instead."
        )
    n = len(raw.test_labels)
    order = np.random.default_rng(seed + 1).permutation(n)[: max(1, round(n * subset))]
    order.sort()
    return raw.test_images, order
