"""A run's complete state in a checkpoint, so that ``resume`` continues it exactly.

One file holds what the final model needs (weights, spec, result: :mod:`checkpoint`'s format)
and, under ``"train"``, everything the loop's next step depends on: optimizer, GradScaler, EMA,
step and images seen, the sampler's position and generator, torch's CPU/CUDA RNG states (one
process; under DDP each step seeds itself from (seed, rank, step)), the metric window, the
history and the recipe. Everything is tensors, containers and primitives, so
``torch.load(weights_only=True)`` reads it; it is written to a temporary name and renamed, so a
``kill -9`` mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from coatnet_nas.errors import CoatnetError
from coatnet_nas.train.checkpoint import FORMAT, read_payload, save_payload
from coatnet_nas.train.result import EvalReport, TrainResult

if TYPE_CHECKING:
    from coatnet_nas.train.parts import RunParts

__all__ = ["Checkpoints", "load_resume_state", "restore_run"]


@dataclass
class Checkpoints:
    """Where and how often a run saves itself (only rank 0 writes).

    ``every`` seconds of wall time (None: only at epoch ends and at the end; 0: after every
    step). After the run, ``written`` is the final checkpoint's path and ``error`` says why a
    write failed (the run goes on: a full disk must not throw the trained model away).
    """

    path: Path
    every: float | None = 600.0
    written: Path | None = None
    error: str | None = None
    _last: float = 0.0

    def start(self) -> None:
        """The interval counts from the start of the run."""
        self._last = time.perf_counter()

    def due(self) -> bool:
        return self.every is not None and time.perf_counter() - self._last >= self.every

    def save(self, run: RunParts, result: TrainResult | None = None) -> None:
        """Write the run's state now; a failure is recorded, not raised."""
        self._last = time.perf_counter()
        payload = _payload(run, result)
        try:
            self.written = save_payload(self.path, payload)
            self.error = None
        except CoatnetError as exc:
            self.error = str(exc)


def _payload(run: RunParts, result: TrainResult | None) -> dict[str, Any]:
    spec = getattr(run.model, "spec", None)
    cuda = torch.cuda.get_rng_state_all() if run.device.type == "cuda" else []
    return {
        "format": FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in run.model.state_dict().items()},
        "spec": spec.to_dict() if spec is not None and hasattr(spec, "to_dict") else None,
        "result": result.to_dict() if result is not None else None,
        "optimizer": run.optimizer.state_dict(),
        "train": {
            "recipe": run.recipe.model_dump(mode="json"),
            "seed": run.seed,
            "world_size": run.world.size,
            "finished": result is not None,
            "step": run.step,
            "images_seen": run.images_seen,
            "lr": run.lr,
            "elapsed": run.budget.elapsed(),
            "train_seconds": run.clock.train_seconds,
            "eval_estimate": run.eval_estimate,
            "history": [asdict(report) for report in run.history],
            "window": run.window.state_dict(),
            "sampler": run.sampler.state_dict(),
            "scaler": run.scaler.state_dict(),
            "ema": run.ema.state_dict() if run.ema is not None else None,
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": cuda,
        },
    }


def load_resume_state(path: str | Path, spec: Any, recipe: Any, seed: int) -> dict[str, Any]:
    """Read a checkpoint to resume and refuse one of another run (spec, recipe or seed)."""
    payload = read_payload(path, param="resume")
    state = payload.get("train")
    if not isinstance(state, dict):
        raise CoatnetError(
            f"resume {path}: the checkpoint holds weights only, not a run's state; use it to "
            "initialize a new run instead.",
            param="resume",
        )
    diffs = []
    mine = spec.to_dict() if spec is not None and hasattr(spec, "to_dict") else None
    if mine is not None and payload.get("spec") != mine:
        theirs = payload.get("spec") or {}
        keys = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        diffs += [f"spec {k} {mine.get(k)!r} (checkpoint {theirs.get(k)!r})" for k in keys]
    ours = recipe.model_dump(mode="json")
    stored = state["recipe"]
    keys = sorted(k for k in set(ours) | set(stored) if ours.get(k) != stored.get(k))
    diffs += [f"{k} {ours.get(k)!r} (checkpoint {stored.get(k)!r})" for k in keys]
    if state["seed"] != seed:
        diffs.append(f"seed {seed} (checkpoint {state['seed']})")
    if diffs:
        raise CoatnetError(
            f"resume {path}: this run differs from the checkpoint's: {'; '.join(diffs[:6])}. "
            "Resume with the same spec, recipe and seed, or start a new run.",
            param="resume",
        )
    return {**state, "state_dict": payload["state_dict"], "optimizer": payload["optimizer"]}


def restore_run(run: RunParts, state: dict[str, Any]) -> None:
    """Put a freshly set-up run where the checkpoint's left off."""
    run.model.load_state_dict(state["state_dict"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scaler.load_state_dict(state["scaler"])
    if run.ema is not None and state["ema"] is not None:
        run.ema.load_state_dict(state["ema"])
    run.step, run.images_seen, run.lr = state["step"], state["images_seen"], state["lr"]
    run.budget.start = time.perf_counter() - state["elapsed"]
    run.clock.train_seconds = state["train_seconds"]
    run.eval_estimate = state["eval_estimate"]
    run.history = [EvalReport(**report) for report in state["history"]]
    run.window.load_state_dict(state["window"])
    run.sampler.load_state_dict(state["sampler"])
    if run.world.size == 1:  # under DDP every step re-seeds from (seed, rank, step) instead
        torch.set_rng_state(state["rng_cpu"])
        index = run.device.index or 0
        if run.device.type == "cuda" and index < len(state["rng_cuda"]):
            torch.cuda.set_rng_state(state["rng_cuda"][index], run.device)
