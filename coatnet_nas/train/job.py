"""One whole training run as a value: :class:`TrainJob` (what ``coatnet train`` runs).

A job is a model spec (already shrunk and sized), its data (:class:`DataOptions`), a
:class:`TrainRecipe`, a :class:`Runtime`, a seed and where the run saves itself. Building it
checks everything that needs no data, so a bad option fails before any process starts or any
image loads; :meth:`TrainJob.run` then loads the data, builds the model and trains it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coatnet_nas.data.options import DataOptions
from coatnet_nas.errors import CoatnetError
from coatnet_nas.spec import ModelSpec
from coatnet_nas.train.recipe import Runtime, TrainRecipe

__all__ = ["Saving", "TrainJob", "TrainOutcome"]


@dataclass(frozen=True)
class Saving:
    """Where a run keeps itself: ``save`` (every ``save_every`` minutes, each epoch and at the
    end), ``resume`` (a run saved there, continued) or ``init`` (weights a new run starts from).
    A resumed run goes on saving where it was unless ``save`` says otherwise."""

    save: Path | None = None
    save_every: float = 10.0
    resume: Path | None = None
    init: Path | None = None

    def __post_init__(self) -> None:
        from coatnet_nas._io import check_output_file

        if self.resume is not None and self.init is not None:
            raise CoatnetError(
                "resume continues a run with its own weights; init starts a new one from "
                "weights. Give one of them.",
                param="init",
            )
        for path, param in ((self.resume, "resume"), (self.init, "init")):
            if path is not None and not Path(path).is_file():
                raise CoatnetError(f"{param} {path}: no such checkpoint file.", param=param)
        if self.save_every < 0:
            raise CoatnetError(
                f"save_every must be >= 0 minutes, got {self.save_every:g}.", param="save_every"
            )
        if self.save is None and self.resume is not None:
            object.__setattr__(self, "save", self.resume)
        if self.save is not None:  # a bad target must fail now, not after the training
            check_output_file(self.save, param="save")


@dataclass
class TrainOutcome:
    """What a finished job hands back: the result, the trained model, its data and files."""

    result: Any
    model: Any
    data: Any
    checkpoint: Path | None


@dataclass(frozen=True)
class TrainJob:
    """``spec`` trained on ``data`` with ``recipe`` on ``runtime``, in ``nproc`` processes."""

    spec: ModelSpec
    data: DataOptions = field(default_factory=DataOptions)
    recipe: TrainRecipe = field(default_factory=TrainRecipe)
    runtime: Runtime = field(default_factory=Runtime)
    seed: int = 0
    saving: Saving = field(default_factory=Saving)
    nproc: int = 1

    def __post_init__(self) -> None:
        if self.nproc < 1:
            raise CoatnetError(f"nproc must be >= 1, got {self.nproc}.", param="nproc")
        if self.nproc > 1 and self.data.stream:
            raise CoatnetError("stream runs in one process; use `nproc` 1.", param="stream")
        if self.recipe.batch_size % self.nproc:
            raise CoatnetError(
                f"batch_size {self.recipe.batch_size} (the global batch) cannot be split evenly "
                f"over {self.nproc} processes; use a multiple of {self.nproc}.",
                param="batch_size",
            )

    def run(
        self,
        *,
        runtime: Runtime | None = None,
        progress: Callable | None = None,
        on_start: Callable | None = None,
        callback: Callable | None = None,
    ) -> TrainOutcome:
        """Load the data, build the model (from ``init``'s weights), train, save.

        ``runtime`` replaces the job's (a rank's placed device); ``on_start(spec, data, model)``
        runs before the first step; ``progress`` and ``callback`` go to the trainer.
        """
        from coatnet_nas.data.loading import load_data
        from coatnet_nas.train.adapt import build_for_data
        from coatnet_nas.train.fit import train_model
        from coatnet_nas.train.state import Checkpoints
        from coatnet_nas.train.weights import load_weights

        runtime = runtime or self.runtime
        data = load_data(
            self.data,
            self.spec.image_size,
            device=runtime.device,
            in_chans=self.spec.in_chans,
            seed=self.seed,
        )
        recipe = self.recipe
        model = build_for_data(
            self.spec, data, drop_path_rate=recipe.drop_path_rate, seed=self.seed
        )
        if self.saving.init is not None:
            load_weights(model, self.saving.init)
        if on_start is not None:
            on_start(model.spec, data, model)
        saving = self.saving
        plan = Checkpoints(saving.save, every=saving.save_every * 60) if saving.save else None
        result = train_model(
            model,
            data,
            recipe,
            callback,
            runtime=runtime,
            seed=self.seed,
            checkpoints=plan,
            resume=saving.resume,
            progress=progress,
        )
        return TrainOutcome(result, model, data, _written(plan, model, result))


def _written(plan: Any, model: Any, result: Any) -> Path | None:
    """The checkpoint written; if its target failed, the trained model is kept beside the
    working directory and the error says where (a full disk must not lose a finished run)."""
    import torch.distributed as dist

    from coatnet_nas.train.checkpoint import save_checkpoint

    if plan is None:
        return None
    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return plan.path
    if plan.error is None and plan.written is not None:
        return plan.written
    fallback = Path.cwd() / f"coatnet-rescued-{plan.path.name or 'model.pt'}"
    save_checkpoint(fallback, model, spec=model.spec, result=result)
    raise CoatnetError(f"{plan.error} The trained model was saved to {fallback} instead.")
