"""Learning-rate schedule, optimizer and mixed precision of a run."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
from torch import nn

from coatnet_nas.train.recipe import AmpMode, TrainRecipe

__all__ = ["amp_dtype", "autocast", "lr_at", "make_optimizer", "param_groups"]


def lr_at(recipe: TrainRecipe, progress: float) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``lr * final_lr_scale``."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < recipe.warmup:
        return recipe.lr * progress / recipe.warmup
    t = (progress - recipe.warmup) / max(1e-12, 1.0 - recipe.warmup)
    floor = recipe.final_lr_scale
    return recipe.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: decayed weights, and what the model exempts.

    The model names its exemptions (``no_weight_decay()``, as timm models do); a model without
    one gets the usual rule, every 1-D parameter (biases and norm scales).
    """
    exempt = getattr(model, "no_weight_decay", None)
    names = set(exempt()) if callable(exempt) else None
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = name in names if names is not None else p.ndim <= 1
        (no_decay if skip else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(
    model: nn.Module, recipe: TrainRecipe, device: torch.device
) -> torch.optim.AdamW:
    """AdamW, fused into one kernel where torch supports it (a per-tensor loop costs more)."""
    groups = param_groups(model, recipe.weight_decay)
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.AdamW(groups, lr=recipe.lr, fused=True)
        except (RuntimeError, TypeError):  # older torch, or an unsupported dtype/device
            pass
    return torch.optim.AdamW(groups, lr=recipe.lr)


def amp_dtype(mode: AmpMode, device: torch.device) -> torch.dtype | None:
    """The autocast dtype ``mode`` means on ``device`` (None: full precision)."""
    mode = AmpMode(mode)
    if mode is AmpMode.OFF or (mode is AmpMode.AUTO and device.type != "cuda"):
        return None
    if mode is AmpMode.FP16:
        return torch.float16
    if mode is AmpMode.BF16 or (device.type == "cuda" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
