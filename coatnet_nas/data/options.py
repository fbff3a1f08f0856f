"""Which data a run reads, as one validated value: :class:`DataOptions`.

Every check on data settings lives here (or in the functions here that the loaders call too),
so a command line that builds a :class:`DataOptions` from its flags and a Python caller get the
same message for the same bad value. :func:`coatnet_nas.data.loading.load_data` reads the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from coatnet_nas.errors import DataError, as_choice

__all__ = ["AutoAugment", "DataOptions", "Holdout", "check_split", "check_stream"]


class Holdout(str, Enum):
    """Where validation images come from: a seeded split of the pool, or the official test set."""

    SPLIT = "split"
    TEST = "test"

    def __str__(self) -> str:
        return self.value


class AutoAugment(str, Enum):
    """Streaming's batched policy: TrivialAugment, RandAugment (n=2, m=9), or none."""

    TRIVIAL = "trivial"
    RAND = "rand"
    NONE = "none"

    def __str__(self) -> str:
        return self.value


def check_split(subset: float, val_fraction: float, holdout: Holdout | str) -> Holdout:
    """The split settings every loader shares; the holdout as its enum."""
    if not 0.0 < subset <= 1.0:
        raise DataError(f"subset must be a fraction in (0, 1], got {subset}.", param="subset")
    holdout = as_choice(Holdout, holdout, "holdout")
    if holdout is Holdout.SPLIT and not 0.0 < val_fraction < 1.0:
        raise DataError(
            f"val_fraction must be in (0, 1), got {val_fraction}.", param="val_fraction"
        )
    return holdout


def check_stream(
    workers: int, augment: AutoAugment | str, mixup: float, cutmix: float, *, names: tuple = ()
) -> AutoAugment:
    """Streaming settings (``names``: what the caller calls workers and augment)."""
    workers_name, augment_name = names or ("workers", "augment")
    if workers < 0:
        raise DataError(f"{workers_name} must be >= 0, got {workers}.", param=workers_name)
    for name, value in (("mixup", mixup), ("cutmix", cutmix)):
        if not 0 <= value <= 1:
            raise DataError(f"{name} must be in [0, 1], got {value:g}.", param=name)
    return as_choice(AutoAugment, augment, augment_name)


@dataclass(frozen=True)
class DataOptions:
    """A data set and how it is split and fed: everything ``coatnet train`` reads data with.

    ``dataset`` is a name ``prepare_data`` knows (``synthetic[:N]``, ``fashion-mnist``,
    ``cifar10``, ``cifar100``, ``folder:PATH``). ``stream`` decodes a ``folder:`` data set in
    ``loader_workers`` processes on every step instead of reading its prepared cache, augmented
    on the device with ``auto_augment``, ``mixup`` and ``cutmix`` (streaming only).
    """

    dataset: str = "synthetic"
    data_dir: Path | None = None
    subset: float = 1.0
    val_fraction: float = 0.1
    holdout: Holdout = Holdout.SPLIT
    crop_padding: int = 0
    memory_cap: str | None = None
    stream: bool = False
    loader_workers: int = 2
    auto_augment: AutoAugment = AutoAugment.TRIVIAL
    mixup: float = 0.0
    cutmix: float = 0.0

    def __post_init__(self) -> None:
        from coatnet_nas.data.mapped import memory_cap_bytes
        from coatnet_nas.data.sources import parse_name

        object.__setattr__(
            self, "holdout", check_split(self.subset, self.val_fraction, self.holdout)
        )
        if self.crop_padding < 0:
            raise DataError(
                f"crop_padding must be >= 0 pixels, got {self.crop_padding}.", param="crop_padding"
            )
        if self.memory_cap is not None:
            memory_cap_bytes(self.memory_cap)
        augment = check_stream(
            self.loader_workers,
            self.auto_augment,
            self.mixup,
            self.cutmix,
            names=("loader_workers", "auto_augment"),
        )
        object.__setattr__(self, "auto_augment", augment)
        if not self.stream:
            given = (
                ("mixup", self.mixup != 0),
                ("cutmix", self.cutmix != 0),
                ("auto_augment", augment is not AutoAugment.TRIVIAL),
            )
            for name, on in given:
                if on:
                    raise DataError(
                        f"{name} is a streaming option; streaming options only apply with "
                        "`stream` (`dataset` folder:PATH).",
                        param=name,
                    )
        elif parse_name(self.dataset)[0] != "folder":
            raise DataError(
                f"stream reads image files: it needs `dataset` folder:PATH, got "
                f"{self.dataset!r} (that one is read from its prepared cache without `stream`).",
                param="stream",
            )
