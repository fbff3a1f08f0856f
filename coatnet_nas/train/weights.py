"""Initialize a model from a checkpoint trained at another resolution (fine-tune at 384).

Every weight of CoAtNet is resolution-independent except the relative-position bias tables of
the attention blocks: ``(heads, (2H-1)(2W-1))`` for an H x W token grid. A model built for a new
image size gets each table from the checkpoint's by bicubic interpolation of the per-head
``(2H-1) x (2W-1)`` map (the BEiT/timm approach); the index buffers are not stored (they are
rebuilt by the new model for its grid). Anything else that differs in shape (widths, depths,
heads, layout, classes) cannot be mapped and is refused, naming the weight and both shapes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from coatnet_nas.blocks.attention import RelativeAttention
from coatnet_nas.errors import CoatnetError
from coatnet_nas.train.checkpoint import Checkpoint, load_checkpoint

__all__ = ["load_weights", "resize_bias_table"]


def resize_bias_table(
    table: torch.Tensor, size: tuple[int, int], name: str = "", *, param: str = "init"
) -> torch.Tensor:
    """``(heads, S*S)`` table of a square grid -> ``(heads, (2H-1)(2W-1))`` for grid ``size``."""
    heads, length = table.shape
    side = math.isqrt(length)
    if side * side != length or side % 2 == 0:
        raise CoatnetError(
            f"{param}: weight {name} of shape {tuple(table.shape)} is not a square (2H-1)x(2H-1) "
            f"relative-position table; it cannot be resized to the {size[0]}x{size[1]} grid.",
            param=param,
        )
    h, w = size
    if (2 * h - 1, 2 * w - 1) == (side, side):
        return table.clone()
    grid = table.detach().float().reshape(1, heads, side, side)
    resized = F.interpolate(grid, size=(2 * h - 1, 2 * w - 1), mode="bicubic", align_corners=False)
    return resized.reshape(heads, -1).to(table.dtype)


def _state(source: str | Path | Checkpoint | dict[str, Any]) -> dict[str, torch.Tensor]:
    if isinstance(source, Checkpoint):
        return source.state_dict
    if isinstance(source, dict):
        return source
    return load_checkpoint(source).state_dict


def load_weights(
    model: nn.Module, source: str | Path | Checkpoint | dict[str, Any], *, param: str = "init"
) -> list[str]:
    """Load ``source``'s weights into ``model``, resizing relative-position tables to its grids.

    ``source`` is a checkpoint path, a :class:`Checkpoint` or a state dict. Returns the names of
    the tables that were resized. Raises :class:`CoatnetError` (parameter ``param``: the caller's
    name for the source, ``init`` for training) when a weight is missing, unexpected or of a
    shape that cannot be mapped; the model is left untouched in that case.
    """
    theirs = _state(source)
    ours = model.state_dict()
    grids = {
        f"{name}.bias_table": module.size
        for name, module in model.named_modules()
        if isinstance(module, RelativeAttention)
    }
    missing = sorted(set(ours) - set(theirs))
    extra = sorted(set(theirs) - set(ours))
    if missing or extra:
        what = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing[:4])}" if missing else "",
                f"unexpected {', '.join(extra[:4])}" if extra else "",
            )
            if part
        )
        raise CoatnetError(
            f"{param}: the checkpoint is of another architecture ({what}); it can initialize "
            "only the same layout, depths and widths.",
            param=param,
        )
    loaded, resized = {}, []
    for key, target in ours.items():
        value = theirs[key]
        if key in grids and value.shape != target.shape:
            if value.shape[0] != target.shape[0]:
                raise _shape_error(key, value, target, "a different number of heads", param)
            value = resize_bias_table(value, grids[key], key, param=param)
            resized.append(key)
        if value.shape != target.shape:
            raise _shape_error(
                key, value, target, "a different width, kernel or class count", param
            )
        loaded[key] = value
    model.load_state_dict(loaded)
    return resized


def _shape_error(
    key: str, value: torch.Tensor, target: torch.Tensor, why: str, param: str
) -> CoatnetError:
    return CoatnetError(
        f"{param}: weight {key} has shape {tuple(value.shape)} in the checkpoint but "
        f"{tuple(target.shape)} in the model ({why}); the checkpoint cannot initialize it.",
        param=param,
    )
