"""Streaming full-resolution input for final training at 224+ px, augmented on the device.

Proxy runs hold a whole data set in memory; a final run at 224 px over many images cannot. Here
``torch.utils.data.DataLoader`` worker processes decode files (reduced-size JPEG decode, see
:mod:`coatnet_nas.data.decode`) to a fixed *load size* (``image_size / 0.875``, 256 for 224:
shorter side to 256, centre square) and collate uint8 batches; everything random happens batched
on the training device with ``kornia.augmentation``: ``RandomResizedCrop`` (scale 0.08-1) to the
image size, ``RandomHorizontalFlip``, optionally ``auto.TrivialAugment`` (no magnitudes to tune,
as good as RandAugment in its paper) or ``auto.RandAugment``, then ``RandomMixUpV2`` /
``RandomCutMixV2``. Workers therefore only decode (the CPU-bound part that parallelizes), and
a GPU does the per-pixel work in a few kernels instead of per-sample Python.

The crop is taken from the centre square at the load size, not from the whole original photo:
that is what makes batches collatable before augmentation; the long side's margins are lost.
Validation batches are the centre ``image_size`` crop of the load size (the usual 0.875 ratio).

:class:`StreamingData` mirrors the part of :class:`~coatnet_nas.data.ProxyData` a trainer uses
(``train_batches``, ``val_batches``, ``steps_per_epoch``, ``to``, sizes and classes). With mixup
or cutmix its training labels are soft targets ``(B, num_classes)`` (float), which
``torch.nn.functional.cross_entropy`` accepts directly.

(Just over ~300 lines: the worker-side decode and the device-side augmentation are one pipeline.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from coatnet_nas.data.decode import UnreadableImage, decode_fitted, default_decoder
from coatnet_nas.data.devices import resolve_device
from coatnet_nas.data.folder import scan_folder
from coatnet_nas.data.options import AutoAugment, check_split, check_stream
from coatnet_nas.data.tensors import describe_data
from coatnet_nas.errors import DataError

__all__ = ["AUGMENTS", "FileImages", "StreamSampler", "StreamingData"]

AUGMENTS = tuple(a.value for a in AutoAugment)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FileImages(Dataset):
    """Image files decoded to ``size`` in the worker; an unreadable file yields label -1."""

    def __init__(self, files: list[str], labels: list[int], size: tuple[int, int]) -> None:
        self.files, self.labels, self.size = files, labels, size
        self.decoder = default_decoder()

    def subset(self, rows: np.ndarray) -> FileImages:
        """The files at ``rows`` (a seeded split or subset)."""
        return FileImages([self.files[r] for r in rows], [self.labels[r] for r in rows], self.size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        try:
            return torch.from_numpy(
                decode_fitted(self.files[i], self.size, self.decoder)
            ), self.labels[i]
        except UnreadableImage:  # one bad file must not end a long run: dropped from its batch
            return torch.zeros((3, *self.size), dtype=torch.uint8), -1


@dataclass(frozen=True, eq=False)
class StreamingData:
    """Files decoded by ``workers`` loader processes, augmented in batches on ``device``.

    A little over our ~120-line class guide: it offers the trainer the same methods as
    ``ProxyData`` (batches, steps per epoch, device moves, description) on top of its own.
    """

    train_set: FileImages
    val_set: FileImages | None
    classes: tuple[str, ...]
    image_size: tuple[int, int]
    device: torch.device
    workers: int = 2
    augment: Literal["none", "trivial", "rand"] = "trivial"
    mixup: float = 0.0  # mixup lambda drawn in (0, mixup); 0 turns it off
    cutmix: float = 0.0  # probability of cutmix per batch; 0 turns it off
    seed: int = 0
    in_chans: int = 3
    name: str = "stream"
    source: str = ""

    def __post_init__(self) -> None:
        augment = check_stream(self.workers, self.augment, self.mixup, self.cutmix)
        object.__setattr__(self, "augment", augment.value)

    @classmethod
    def from_folder(
        cls,
        root: str | Path,
        image_size: int | tuple[int, int] = 224,
        *,
        device: str | torch.device = "cpu",
        workers: int = 2,
        subset: float = 1.0,
        val_fraction: float = 0.1,
        holdout: Literal["split", "test"] | None = None,
        **options,
    ) -> StreamingData:
        """Stream folder ``root`` (a sub-folder per class, or train/ + val/); options: fields.

        ``subset``, ``val_fraction`` and ``holdout`` select files as
        :func:`~coatnet_nas.data.prepare_data` selects rows: a seeded validation fraction of the
        training files (``"split"``), or the folder's own val/ (test/) split (``"test"``); None
        takes the folder's split when it has one.
        """
        from coatnet_nas.data.tensors import split_indices

        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if min(size) < 1:
            raise DataError(f"image_size must be positive, got {image_size}.", param="image_size")
        if holdout is not None:
            holdout = check_split(subset, val_fraction, holdout).value  # type: ignore[assignment]
        else:
            check_split(subset, val_fraction, "test")
        plan = scan_folder(Path(root).expanduser().resolve())
        load = (round(size[0] / 0.875), round(size[1] / 0.875))
        files = [str(plan.root / f) for f in plan.files]
        pool = FileImages(files[: plan.n_train], list(plan.labels[: plan.n_train]), load)
        if holdout is None:
            holdout = "test" if plan.n_test else "split"
        if holdout == "test" and not plan.n_test:
            raise DataError(
                f"dataset 'folder:{plan.root}' has no val/ or test/ split; use holdout='split'.",
                param="holdout",
            )
        train_rows, val_rows = split_indices(
            plan.n_train, subset, val_fraction, int(options.get("seed", 0)), holdout
        )
        if holdout == "test":
            held = FileImages(files[plan.n_train :], list(plan.labels[plan.n_train :]), load)
            n = len(held)
            keep = np.sort(np.random.default_rng(int(options.get("seed", 0)) + 1).permutation(n))
            val = held.subset(keep[: max(1, round(n * subset))])
        else:
            val = pool.subset(val_rows)
        return cls(
            pool.subset(train_rows),
            val,
            plan.classes,
            size,
            resolve_device(device),
            workers,
            name=f"folder:{plan.root}",
            source=str(plan.root),
            **options,
        )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def train(self) -> FileImages:
        """The training files (``len()`` is what a trainer asks of it)."""
        return self.train_set

    @property
    def val(self) -> FileImages:
        return self.val_set if self.val_set is not None else self.train_set.subset(np.arange(0))

    @property
    def storage(self) -> str:
        return "stream"

    def describe(self) -> dict:
        return {
            **describe_data(self),
            "loader_workers": self.workers,
            "augment": self.augment,
            "mixup": self.mixup,
            "cutmix": self.cutmix,
        }

    def sampler(self, batch_size: int, seed: int, augment: bool = True) -> StreamSampler:
        """The trainer's batch source: resumable at a batch (see :class:`StreamSampler`)."""
        return StreamSampler(self, batch_size, seed, augment)

    def to(self, device: str | torch.device) -> StreamingData:
        return replace(self, device=resolve_device(device))

    def steps_per_epoch(self, batch_size: int) -> int:
        return max(1, len(self.train_set) // batch_size)  # type: ignore[arg-type]

    def _loader(
        self, dataset: Dataset, batch_size: int, order: list[int] | None, drop_last: bool
    ) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=order,
            drop_last=drop_last,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if self.workers else None,
            persistent_workers=False,
            worker_init_fn=_one_thread,
        )

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def _pipeline(self) -> list:
        import kornia.augmentation as K
        from kornia.augmentation import auto

        steps = [K.RandomResizedCrop(self.image_size, scale=(0.08, 1.0)), K.RandomHorizontalFlip()]
        if self.augment == "trivial":
            steps.append(auto.TrivialAugment())
        elif self.augment == "rand":
            steps.append(auto.RandAugment(n=2, m=9))
        return steps

    def _mix(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import kornia.augmentation as K

        use_cutmix = self.cutmix > 0 and float(torch.rand(())) < self.cutmix
        if use_cutmix:
            mixer = K.RandomCutMixV2(p=1.0, use_correct_lambda=True, data_keys=["input", "class"])
        else:
            mixer = K.RandomMixUpV2(
                p=1.0, lambda_val=(0.0, self.mixup), data_keys=["input", "class"]
            )
        x, mixed = mixer(x, y)
        mixed = mixed.reshape(-1, len(y), 3)[-1]  # cutmix: (num_mix, B, 3); take the last
        soft = torch.zeros(len(y), self.num_classes, device=x.device)
        lam = mixed[:, 2:3]
        soft.scatter_add_(1, mixed[:, 0:1].long(), 1 - lam)
        soft.scatter_add_(1, mixed[:, 1:2].long(), lam)
        return x, soft

    def train_batches(
        self,
        batch_size: int,
        *,
        generator: torch.Generator | None = None,
        augment: bool = True,
        start: int = 0,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of shuffled batches on the device: float images, int64 (or soft) labels.

        The file order is drawn from ``generator`` (a CPU one is seeded from a device one);
        ``start`` skips that many batches without decoding them (resuming mid-epoch).
        """
        if generator is None:
            generator = torch.Generator().manual_seed(self.seed)
        elif generator.device.type != "cpu":
            generator = torch.Generator().manual_seed(generator.initial_seed())
        pipeline = self._pipeline() if augment else None
        n = len(self.train_set)
        size = min(batch_size, n)
        order = torch.randperm(n, generator=generator)[: self.steps_per_epoch(size) * size]
        loader = self._loader(self.train_set, size, order[start * size :].tolist(), True)
        for images, labels in loader:
            x, y = self._on_device(images, labels)
            if pipeline is None:
                yield self.normalize(self._centre(x)), y
                continue
            for step in pipeline:
                x = step(x)
            if self.mixup > 0 or self.cutmix > 0:
                x, y = self._mix(x, y)
            yield self.normalize(x), y

    def val_batches(self, batch_size: int = 256) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The held-out split in order: centre crops, normalized, unaugmented."""
        if self.val_set is None:
            return
        for images, labels in self._loader(self.val_set, batch_size, None, False):
            x, y = self._on_device(images, labels)
            yield self.normalize(self._centre(x)), y

    def _on_device(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        keep = labels >= 0
        if not bool(keep.all()):
            images, labels = images[keep], labels[keep]
        x = images.to(self.device, non_blocking=True).float().div_(255)
        return x, labels.to(self.device, non_blocking=True)

    def _centre(self, x: torch.Tensor) -> torch.Tensor:
        (h, w), (H, W) = self.image_size, x.shape[2:]
        top, left = (H - h) // 2, (W - w) // 2
        return x[:, :, top : top + h, left : left + w]


def _one_thread(_worker: int) -> None:
    """A loader worker decodes one image at a time: one compute thread, not a pool per worker."""
    torch.set_num_threads(1)


class StreamSampler:
    """``next_batch()`` for the training loop: the next streamed batch, None at an epoch's end.

    Epoch ``e`` shuffles with seed ``seed + e``, so the state (epoch, batch) is enough to resume
    on exactly the next files without decoding the skipped ones; the random augmentation draws
    come from torch's global generator and are not replayed (a resumed streaming run sees the
    same images in the same order, not bitwise the same crops). One process only.
    """

    def __init__(self, data: StreamingData, batch_size: int, seed: int, augment: bool) -> None:
        self.data, self.batch_size, self.seed, self.augment = data, batch_size, seed, augment
        self.epoch = self.position = 0
        self._batches: Iterator | None = None

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self._batches is None:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            self._batches = self.data.train_batches(
                self.batch_size, generator=generator, augment=self.augment, start=self.position
            )
        batch = next(self._batches, None)
        if batch is None:
            self._batches = None
            self.epoch, self.position = self.epoch + 1, 0
            return None
        self.position += 1
        return batch

    def close(self) -> None:
        """Stop the epoch's loader workers now (a run may end mid-epoch)."""
        if self._batches is not None:
            self._batches.close()  # type: ignore[attr-defined]
            self._batches = None

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.close()
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
