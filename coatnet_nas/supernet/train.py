"""Training a supernet: the sandwich rule with in-place distillation (BigNAS, AttentiveNAS, NASViT).

Every step trains the sub-networks :func:`~coatnet_nas.supernet.sandwich.step_specs` draws on
one batch (:mod:`coatnet_nas.supernet.sandwich`); their gradients are summed before one AdamW
step. The drawn sub-networks are a function of (seed, step) and the batches come from a
resumable sampler, so a run killed at any point and resumed from its last save continues
exactly. In a ``torch.distributed`` process group (ranks started by torch's elastic agent or
torchrun) every rank trains its slice of the global batch and the gradients are averaged before
the step (:mod:`coatnet_nas.supernet.parallel`); rank 0 alone writes the file and reports.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from coatnet_nas.errors import CoatnetError
from coatnet_nas.supernet.checkpoint import SupernetData, load_supernet, save_supernet
from coatnet_nas.supernet.model import Supernet
from coatnet_nas.supernet.parallel import average_gradients, split_batch, weights_digest
from coatnet_nas.supernet.sandwich import SandwichRule, sandwich_step, step_specs
from coatnet_nas.supernet.space import ElasticSpace, elastic_space
from coatnet_nas.train.distributed import World
from coatnet_nas.train.recipe import TrainRecipe
from coatnet_nas.train.sampler import EpochSampler
from coatnet_nas.train.schedule import lr_at, make_optimizer

__all__ = [
    "DEFAULT_EPOCHS",
    "SandwichRule",
    "SupernetProgress",
    "SupernetRun",
    "SupernetSetup",
    "setup_supernet",
    "train_supernet",
]

DEFAULT_EPOCHS = 10.0  # a supernet trains many sub-networks: ten passes of the proxy's subset


@dataclass
class SupernetProgress:
    """One step done: the largest sub-network's loss and accuracy on the step's batch."""

    step: int
    total: int
    loss: float
    accuracy: float
    lr: float
    seconds: float


@dataclass
class SupernetRun:
    """What a training call did: steps, time, the per-step history (largest's loss/accuracy)."""

    path: Path
    steps: int
    total: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int = 0
    world_size: int = 1
    rank_digests: list[str] = field(default_factory=list)  # one per rank (several ranks)


@dataclass
class SupernetSetup:
    """A search space made ready for supernet training: its elastic view, data and recipe."""

    space: ElasticSpace
    settings: SupernetData
    data: Any
    recipe: TrainRecipe
    source: dict[str, Any]


def setup_supernet(
    search_space: Any,
    *,
    dataset: str | None = None,
    data_dir: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    **training: Any,
) -> SupernetSetup:
    """Read ``search_space`` (a ``SearchSpace``) at its proxy's size and prepare its data.

    Training settings start from the space's proxy recipe with ``training`` overrides (``None``
    values ignored); without an epochs or steps budget the run takes :data:`DEFAULT_EPOCHS`.
    """
    proxy = search_space.proxy
    changes = {k: v for k, v in training.items() if v is not None}
    if "epochs" not in changes:  # the proxy's one epoch is not a supernet's budget
        changes["epochs"] = None if "steps" in changes else DEFAULT_EPOCHS
    changes["seconds"] = None  # the schedule anneals over steps; a time budget has none
    recipe = proxy.train.evolve(**changes)
    settings = SupernetData(
        dataset=dataset or proxy.dataset,
        data_dir=data_dir or proxy.data_dir,
        image_size=proxy.image_size,
        subset=proxy.subset,
        val_fraction=proxy.val_fraction,
        seed=seed,
    )
    data = settings.prepare(device)
    space = elastic_space(
        search_space,
        image_size=tuple(data.image_size),
        num_classes=data.num_classes,
        in_chans=data.in_chans,
        width_mult=proxy.width_mult,
        depth_mult=proxy.depth_mult,
    )
    source = search_space.model_dump(mode="json") if hasattr(search_space, "model_dump") else {}
    return SupernetSetup(space, settings, data, recipe, source)


def _total_steps(recipe: TrainRecipe, steps_per_epoch: int) -> int:
    budgets = []
    if recipe.epochs is not None:
        budgets.append(max(1, math.ceil(recipe.epochs * steps_per_epoch)))
    if recipe.steps is not None:
        budgets.append(recipe.steps)
    if not budgets:
        raise CoatnetError(
            "supernet training needs a budget in epochs or steps (a seconds-only budget has no "
            "schedule to anneal over).",
            param="epochs",
        )
    return min(budgets)


def _settings(
    space: ElasticSpace, data: SupernetData, recipe: TrainRecipe, rule: SandwichRule, seed: int
) -> dict[str, Any]:
    return {
        "space": space.model_dump(mode="json"),
        "data": data.model_dump(mode="json"),
        "recipe": recipe.model_dump(mode="json"),
        "rule": rule.model_dump(mode="json"),
        "seed": seed,
    }


def _resume_state(out: Path, settings: dict[str, Any]) -> dict[str, Any]:
    found = load_supernet(out, param="resume")
    state = found.train
    if not isinstance(state, dict):
        raise CoatnetError(f"resume {out}: the file holds no training state.", param="resume")
    diffs = [k for k in settings if state["settings"].get(k) != settings[k]]
    if diffs:
        raise CoatnetError(
            f"resume {out}: this run differs from the file's in {', '.join(diffs)}; resume with "
            "the same space, data, recipe, sandwich rule and seed, or write a new file.",
            param="resume",
        )
    return {**state, "state_dict": found.state_dict}


def train_supernet(
    space: ElasticSpace,
    data: Any,
    settings: SupernetData,
    recipe: TrainRecipe,
    out: str | Path,
    *,
    rule: SandwichRule | None = None,
    seed: int = 0,
    device: str = "cpu",
    resume: bool = False,
    save_every: float = 60.0,
    source: dict[str, Any] | None = None,
    progress: Callable[[SupernetProgress], None] | None = None,
) -> SupernetRun:
    """Train a supernet over ``space`` on ``data`` and save it to ``out`` (see the module doc).

    ``data`` is the :class:`~coatnet_nas.data.ProxyData` that ``settings`` prepares. The file is
    rewritten every ``save_every`` seconds (0: every step) and at the end; ``resume`` continues
    the run ``out`` holds (refused when its space, data, recipe, rule or seed differ). In a
    process group every rank calls this alike; the global batch must split evenly over them.
    """
    rule = rule or SandwichRule()
    out = Path(out)
    world = World.current()
    config = _settings(space, settings, recipe, rule, seed)
    state = _resume_state(out, config) if resume else None
    dev = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = Supernet(space).to(dev)
    optimizer = make_optimizer(net, recipe, dev)
    batch = min(recipe.batch_size, len(data.train))
    split_batch(batch, world.size)
    sampler = EpochSampler(data, batch, world.rank, world.size, seed, recipe.augment)
    total = _total_steps(recipe, sampler.steps_per_epoch)
    step, history, elapsed = 0, [], 0.0
    if state is not None:  # every rank: the sampler's state is the global order, rank 0's
        net.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        sampler.load_state_dict(state["sampler"])
        step, history, elapsed = state["step"], list(state["history"]), state["elapsed"]
    start_step, start = step, time.perf_counter() - elapsed
    last_save = time.perf_counter()
    digests: list[str] = []

    def save() -> None:
        if not world.main:  # one writer; the others hold the same weights
            return
        train = {
            "settings": config,
            "step": step,
            "total": total,
            "history": history,
            "elapsed": time.perf_counter() - start,
            "optimizer": optimizer.state_dict(),
            "sampler": sampler.state_dict(),
            "finished": step >= total,
            "world_size": world.size,
            "rank_digests": digests,
        }
        save_supernet(out, net, settings, train=train, source=source)

    net.train()
    while step < total:
        images, labels = _next_batch(sampler)
        lr = lr_at(recipe, step / total)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        specs = step_specs(space, rule, seed, step)
        loss, correct = sandwich_step(net, images, labels, specs, rule, recipe.label_smoothing)
        # the global batch's numbers (the mean of the ranks' equal slices): all ranks agree
        first, top = world.mean_(torch.stack([loss.double(), correct.double()])).tolist()
        if not math.isfinite(first):
            save()
            raise CoatnetError(
                f"supernet training diverged at step {step} (loss {first}); lower the lr.",
                param="lr",
            )
        average_gradients(net, world)
        if recipe.grad_clip is not None:
            nn.utils.clip_grad_norm_(net.parameters(), recipe.grad_clip)
        optimizer.step()
        step += 1
        history.append({"step": step, "loss": first, "accuracy": top, "lr": lr})
        if progress is not None and world.main:
            progress(SupernetProgress(step, total, first, top, lr, time.perf_counter() - start))
        if step < total and time.perf_counter() - last_save >= save_every:
            save()
            last_save = time.perf_counter()
    if world.size > 1:  # a record that the replicas ended alike (the file holds rank 0's)
        digests = [f"{round(d):012x}" for d in world.each(weights_digest(net), dev)]
    save()
    seconds = time.perf_counter() - start
    return SupernetRun(out, step, total, seconds, history, start_step, world.size, digests)


def _next_batch(sampler: EpochSampler) -> tuple[torch.Tensor, torch.Tensor]:
    batch = sampler.next_batch()
    return batch if batch is not None else sampler.next_batch()
