"""Images that stay on disk: a memory-mapped split gathered one batch at a time.

When a prepared dataset is larger than the memory cap, :func:`coatnet_nas.data.prepare_data`
keeps it as :class:`MappedImages`: the rows of a split inside a uint8 memory map, plus the
channel/size adaptation to apply. Indexing it (``images[idx]``, ``images[a:b]``) reads just those
rows, adapts them and returns a uint8 tensor on the device, so :class:`~coatnet_nas.data.ProxyData`
gathers batches exactly as it does from a device tensor and the page cache decides what stays in
RAM.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from coatnet_nas.errors import DataError

__all__ = ["CAP_ENV", "DEFAULT_CAP", "MappedImages", "adapt_images", "memory_cap_bytes"]

CAP_ENV = "COATNET_DATA_MEMORY_CAP"
DEFAULT_CAP = 4 << 30  # bytes of uint8 images held in memory before switching to the memory map
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_CHUNK = 8192
_LUMA = (0.299, 0.587, 0.114)


def memory_cap_bytes(cap: int | str | None = None) -> int:
    """``cap`` (bytes, or text like ``"512M"``/``"2G"``), else ``$COATNET_DATA_MEMORY_CAP``, else
    4 GiB."""
    if cap is None:
        cap = os.environ.get(CAP_ENV, DEFAULT_CAP)
    text = str(cap).strip().lower().removesuffix("ib").removesuffix("b")
    unit = text[-1:] if text[-1:] in _UNITS and not text[-1:].isdigit() else ""
    try:
        value = float(text[: len(text) - len(unit)]) * _UNITS[unit]
    except ValueError:
        value = -1.0
    if value < 0:
        raise DataError(
            f"memory_cap must be a size like 2GB, 512M or 1.5G (bytes without a unit), got "
            f"{cap!r}.",
            param="memory_cap",
        )
    return int(value)


def adapt_images(
    images: np.ndarray, in_chans: int, size: tuple[int, int], device: torch.device
) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` -> uint8 on ``device`` at ``size`` with ``in_chans`` channels.

    Grey images are repeated to 3 channels, colour images reduced to luma for 1 channel; resizing
    is antialiased bilinear. Runs in chunks on the target device (fast on a GPU).
    """
    n, c = images.shape[:2]
    if c != in_chans and c != 1 and not (c == 3 and in_chans == 1):
        raise DataError(f"cannot adapt {c}-channel images to in_chans={in_chans} (only 1 <-> 3).")
    out = torch.empty((n, in_chans, *size), dtype=torch.uint8, device=device)
    for start in range(0, n, _CHUNK):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + _CHUNK])).to(device)
        if tuple(x.shape[2:]) != size or (c == 3 and in_chans == 1):
            xf = x.float()
            if c == 3 and in_chans == 1:
                weights = torch.tensor(_LUMA, device=device).view(1, 3, 1, 1)
                xf = (xf * weights).sum(1, keepdim=True)
            if tuple(xf.shape[2:]) != size:
                xf = F.interpolate(
                    xf, size=size, mode="bilinear", antialias=True, align_corners=False
                )
            x = xf.round_().clamp_(0, 255).to(torch.uint8)
        out[start : start + len(x)] = (
            x.expand(-1, in_chans, -1, -1) if x.shape[1] != in_chans else x
        )
    return out


@dataclass(frozen=True, eq=False)
class MappedImages:
    """Rows ``rows`` of memory map ``array``, read per index and adapted on ``device``."""

    array: np.ndarray  # uint8 (N, C, H, W), usually a np.memmap
    rows: np.ndarray  # int64 positions into ``array``, one per image of the split
    in_chans: int
    size: tuple[int, int]
    device: torch.device

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.rows), self.in_chans, *self.size)

    @property
    def dtype(self) -> torch.dtype:
        return torch.uint8

    def __len__(self) -> int:
        return len(self.rows)

    def to(self, device: torch.device | str) -> MappedImages:
        return replace(self, device=torch.device(device))

    def __getitem__(self, key: torch.Tensor | np.ndarray | slice | int) -> torch.Tensor:
        """The images at ``key`` (positions in this split) as a uint8 tensor on ``device``."""
        if isinstance(key, torch.Tensor):
            key = key.detach().cpu().numpy()
        picked = self.rows[key]
        if np.ndim(picked) == 0:
            return self[np.asarray([key])][0]
        # Read in file order (sequential I/O, readahead), then restore the requested order.
        order = np.argsort(picked, kind="stable")
        batch = np.empty((len(picked), *self.array.shape[1:]), dtype=np.uint8)
        batch[order] = self.array[picked[order]]
        return adapt_images(batch, self.in_chans, self.size, self.device)
