"""The entry points: train a model, or a spec built for the data, with a recipe on a runtime."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from coatnet_nas.data.devices import resolve_device
from coatnet_nas.data.stream import StreamingData
from coatnet_nas.data.tensors import ProxyData
from coatnet_nas.spec import ModelSpec
from coatnet_nas.threads import cpu_threads
from coatnet_nas.train.adapt import build_for_data
from coatnet_nas.train.loop import Callback, Progress, run_training
from coatnet_nas.train.recipe import Runtime, TrainConfig, TrainRecipe
from coatnet_nas.train.result import TrainResult
from coatnet_nas.train.state import Checkpoints, load_resume_state

__all__ = ["train_model", "train_spec"]


def _resolve(
    recipe: TrainRecipe | TrainConfig, runtime: Runtime | None, seed: int | None
) -> tuple[TrainRecipe, Runtime, int]:
    if isinstance(recipe, TrainConfig):  # deprecated flat form
        flat_recipe, flat_runtime, flat_seed = recipe.split()
        return flat_recipe, runtime or flat_runtime, flat_seed if seed is None else seed
    return recipe, runtime or Runtime(), 0 if seed is None else seed


def _rng_fork(device: torch.device):
    """Seed locally: a run must not disturb (or depend on) the caller's RNG state."""
    devices = [device.index or 0] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices)


def train_model(
    model: nn.Module,
    data: ProxyData | StreamingData,
    recipe: TrainRecipe | TrainConfig,
    callback: Callback | None = None,
    *,
    runtime: Runtime | None = None,
    seed: int | None = None,
    progress: Progress | None = None,
    checkpoints: Checkpoints | None = None,
    resume: str | Path | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``data`` with ``recipe``, on ``runtime`` (default: auto).

    ``callback(report)`` runs after every evaluation (each epoch, or every ``eval_every`` steps,
    and once at the end); returning True stops the run (``RunStatus.STOPPED``); exceptions it
    raises propagate. ``progress`` receives throttled :class:`ProgressInfo` snapshots. Runs with
    an epoch/step budget are reproducible on CPU for a ``seed``.

    ``checkpoints`` saves the whole run state (at each epoch end, every ``checkpoints.every``
    seconds and at the end); ``resume`` names such a checkpoint to continue from, which must
    come from the same spec, recipe and seed: on CPU the resumed run ends bitwise where the
    uninterrupted one would. Inside an initialized process group (torchrun, see
    :mod:`coatnet_nas.train.distributed`) every rank calls this and trains data-parallel.
    """
    recipe, runtime, seed = _resolve(recipe, runtime, seed)
    device = resolve_device(runtime.device)
    state = None
    if resume is not None:
        state = load_resume_state(resume, getattr(model, "spec", None), recipe, seed)
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    with _rng_fork(device), cpu_threads(runtime.threads):
        torch.manual_seed(seed + rank)  # rank 0 (and a single process) as before
        return run_training(
            model, data, recipe, runtime, seed, callback, progress, checkpoints, state
        )


def train_spec(
    spec: ModelSpec,
    data: ProxyData | StreamingData,
    recipe: TrainRecipe | TrainConfig,
    callback: Callback | None = None,
    *,
    runtime: Runtime | None = None,
    seed: int | None = None,
    progress: Progress | None = None,
    checkpoints: Checkpoints | None = None,
    resume: str | Path | None = None,
) -> TrainResult:
    """Build ``spec`` for ``data`` (image size, classes, channels) and train it.

    ``data`` may also be :class:`~coatnet_nas.data.stream.StreamingData` (files decoded in
    loader workers, augmented on the device, soft labels with mixup/cutmix; one process).
    ``params`` is the built model's exact count and ``flops`` the closed-form
    :func:`coatnet_nas.cost.estimate_cost` of the adapted spec.
    """
    recipe, runtime, seed = _resolve(recipe, runtime, seed)
    model = build_for_data(spec, data, drop_path_rate=recipe.drop_path_rate, seed=seed)
    return train_model(
        model,
        data,
        recipe,
        callback,
        runtime=runtime,
        seed=seed,
        progress=progress,
        checkpoints=checkpoints,
        resume=resume,
    )
