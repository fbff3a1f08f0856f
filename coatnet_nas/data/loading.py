"""Reading the data a :class:`~coatnet_nas.data.options.DataOptions` describes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coatnet_nas.data.options import DataOptions
from coatnet_nas.data.sources import parse_name
from coatnet_nas.data.stream import StreamingData
from coatnet_nas.data.tensors import prepare_data

__all__ = ["load_data"]


def load_data(
    options: DataOptions,
    image_size: tuple[int, int],
    *,
    device: Any = "cpu",
    in_chans: int = 3,
    seed: int = 0,
) -> Any:
    """The data on ``device``: a ``ProxyData``, or ``StreamingData`` when streaming."""
    o = options
    if o.stream:
        return StreamingData.from_folder(
            Path(parse_name(o.dataset)[1] or "").expanduser(),
            image_size,
            device=device,
            subset=o.subset,
            val_fraction=o.val_fraction,
            holdout=o.holdout.value,
            seed=seed,
            workers=o.loader_workers,
            augment=o.auto_augment.value,
            mixup=o.mixup,
            cutmix=o.cutmix,
        )
    return prepare_data(
        o.dataset,
        image_size,
        subset=o.subset,
        val_fraction=o.val_fraction,
        seed=seed,
        device=device,
        data_dir=o.data_dir,
        in_chans=in_chans,
        holdout=o.holdout.value,
        crop_padding=o.crop_padding,
        memory_cap=o.memory_cap,
    )
