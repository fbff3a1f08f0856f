"""The training loop: one short, budgeted run of a model on device-resident data.

A search runs hundreds of these, so the loop is lean (batches come from tensors already on the
device, loss/accuracy accumulate on the device), every budget (epochs, steps, seconds) is checked
between steps, and a diverging candidate ends with ``RunStatus.DIVERGED`` instead of an
exception: one bad architecture must never take a study down. Exceptions raised by the caller's
callback (``optuna.TrialPruned``) do propagate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from coatnet_nas.data.devices import resolve_device
from coatnet_nas.data.tensors import ProxyData
from coatnet_nas.spec import ModelSpec
from coatnet_nas.train.evaluate import evaluate, recalibrate_batchnorm
from coatnet_nas.train.recipe import Runtime, TrainRecipe
from coatnet_nas.train.result import EvalReport, ProgressInfo, RunStatus, TrainResult
from coatnet_nas.train.schedule import amp_dtype, autocast, lr_at, make_optimizer

__all__ = ["Callback", "Progress", "run_training"]

Callback = Callable[[EvalReport], bool | None]
Progress = Callable[[ProgressInfo], None]


class _Budget:
    """Planned steps and the wall-time budget: where the schedule is and whether to go on."""

    def __init__(self, recipe: TrainRecipe, steps_per_epoch: int, start: float):
        self.seconds, self.start = recipe.seconds, start
        planned = []
        if recipe.epochs is not None:
            planned.append(max(1, math.ceil(recipe.epochs * steps_per_epoch)))
        if recipe.steps is not None:
            planned.append(recipe.steps)
        self.total_steps = min(planned) if planned else None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def done(self, step: int) -> bool:
        return self.total_steps is not None and step >= self.total_steps

    def schedule_position(self, step: int) -> float:
        """By steps when a step budget exists (reproducible), else by time."""
        if self.total_steps:
            return (step + 1) / self.total_steps
        return self.elapsed() / self.seconds  # type: ignore[operator]

    def fraction(self, step: int) -> float:
        parts = [step / self.total_steps] if self.total_steps else []
        if self.seconds:
            parts.append(self.elapsed() / self.seconds)
        return min(1.0, max(parts, default=0.0))

    def would_overrun(self, next_step: float, final_eval: float) -> bool:
        return self.seconds is not None and self.elapsed() + next_step + final_eval > self.seconds


class _MetricWindow:
    """Training loss/accuracy since the last evaluation, summed on the device (no syncs)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.loss = torch.zeros((), device=self.device)
        self.correct = torch.zeros((), dtype=torch.long, device=self.device)
        self.images = 0
        self.steps = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.loss += loss
        self.correct += (logits.argmax(dim=1) == labels).sum()
        self.images += len(labels)
        self.steps += 1

    def means(self, fallback: EvalReport | None) -> tuple[float, float]:
        """Mean loss and accuracy (or the last evaluation's, when nothing ran since)."""
        if self.steps == 0:
            return (fallback.train_loss, fallback.train_accuracy) if fallback else (math.nan, 0.0)
        return self.loss.item() / self.steps, self.correct.item() / max(1, self.images)


class _StepClock:
    """Time per training step, from the end of the previous step (or evaluation), so that it
    includes drawing and augmenting the batch: throughput and budget checks see the real cost."""

    def __init__(self) -> None:
        self.train_seconds = self.estimate = 0.0
        self.restart()

    def restart(self) -> None:
        """Start timing afresh (after an evaluation or a callback, which are not a step's)."""
        self._tick = time.perf_counter()

    def lap(self, first: bool) -> None:
        now = time.perf_counter()
        duration, self._tick = now - self._tick, now
        self.train_seconds += duration
        self.estimate = duration if first else 0.7 * self.estimate + 0.3 * duration

    def rate(self, images: int) -> float:
        return images / max(self.train_seconds, 1e-9)


class _Run:
    """One run's moving parts (the recipe says what, the runtime where); ``run()`` drives it."""

    def __init__(self, model: nn.Module, data: ProxyData, recipe: TrainRecipe,
                 runtime: Runtime, seed: int, callback: Callback | None,
                 progress: Progress | None):  # fmt: skip
        start = time.perf_counter()  # the seconds budget covers the whole call, setup included
        self.recipe, self.seed, self.callback, self.progress = recipe, seed, callback, progress
        self.device = resolve_device(runtime.device)
        self.data = data.to(self.device)
        self.model = model.to(self.device)
        self.channels_last = runtime.channels_last
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.amp_dtype = amp_dtype(runtime.amp, self.device)
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp_dtype == torch.float16
        )
        self.forward = torch.compile(self.model) if runtime.compile else self.model
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.model, recipe, self.device)
        self.batch_size = min(recipe.batch_size, len(self.data.train))
        self.steps_per_epoch = self.data.steps_per_epoch(self.batch_size)
        self.budget = _Budget(recipe, self.steps_per_epoch, start)
        self.window = _MetricWindow(self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        # A non-finite check syncs the device; on CPU that is free, on a GPU do it every 25 steps.
        self.check_every = 1 if self.device.type == "cpu" else 25
        self.clock = _StepClock()
        self.step = self.images_seen = 0
        self.lr = 0.0
        self.eval_estimate: float | None = None
        self.history: list[EvalReport] = []
        self.status: RunStatus | None = None
        self.reason: str | None = None
        self._last_progress = 0.0

    # -- one step ---------------------------------------------------------------------------
    def _train_step(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.lr = lr_at(self.recipe, self.budget.schedule_position(self.step))
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.amp_dtype):
            logits = self.forward(images)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.recipe.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.recipe.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.params, self.recipe.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.window.add(loss.detach(), logits.detach(), labels)
        self.step += 1
        self.images_seen += len(labels)
        if self.step % self.check_every == 0 and not torch.isfinite(self.window.loss):
            self._end(RunStatus.DIVERGED, f"non-finite training loss ({loss.item()}) by step "
                      f"{self.step} (lr {self.lr:.3g})")  # fmt: skip
        self.clock.lap(first=self.step == 1)

    def _out_of_time(self) -> bool:
        """Would the next step (plus the final evaluation) overrun the seconds budget?"""
        if self.step == 0:
            return False  # at least one step always runs
        reserve = self.eval_estimate
        if reserve is None:  # no evaluation yet: forward-only costs ~1/3 of a training step
            images = len(self.data.val) + self.recipe.precise_bn * self.batch_size
            reserve = images / max(1.0, self.clock.rate(self.images_seen)) / 3
        return self.budget.would_overrun(self.clock.estimate, reserve)

    # -- evaluation -------------------------------------------------------------------------
    def _evaluate(self, final: bool = False) -> None:
        t0 = time.perf_counter()
        last = self.history[-1] if self.history else None
        if self.recipe.precise_bn and (last is None or self.step > last.step):
            recalibrate_batchnorm(
                self.model, self.data, self.recipe.precise_bn, self.batch_size,
                amp_dtype=self.amp_dtype, channels_last=self.channels_last, seed=self.seed,
            )  # fmt: skip
        accuracy = evaluate(
            self.forward, self.data, self.recipe.eval_batch_size,
            amp_dtype=self.amp_dtype, channels_last=self.channels_last,
        )  # fmt: skip
        self.eval_estimate = time.perf_counter() - t0
        train_loss, train_acc = self.window.means(last)
        report = EvalReport(
            step=self.step, epoch=self.step / self.steps_per_epoch, images_seen=self.images_seen,
            val_accuracy=accuracy, train_loss=train_loss, seconds=self.budget.elapsed(),
            train_accuracy=train_acc, lr=self.lr,
        )  # fmt: skip
        self.history.append(report)
        self.window.reset()
        if self.callback is not None and self.callback(report) and not final:
            self._end(RunStatus.STOPPED, f"stopped by the callback at step {self.step}")
        self.clock.restart()

    def _report_progress(self, force: bool = False) -> None:
        now = time.perf_counter()
        if self.progress is None or (not force and now - self._last_progress < 0.25):
            return
        self._last_progress = now
        loss, acc = self.window.means(self.history[-1] if self.history else None)
        self.progress(ProgressInfo(
            step=self.step, total_steps=self.budget.total_steps,
            fraction=self.budget.fraction(self.step), epoch=self.step / self.steps_per_epoch,
            seconds=self.budget.elapsed(), train_loss=loss, train_accuracy=acc,
            images_per_second=self.clock.rate(self.images_seen),
            val_accuracy=self.history[-1].val_accuracy if self.history else None,
        ))  # fmt: skip

    # -- driver -----------------------------------------------------------------------------
    def _end(self, status: RunStatus, reason: str | None = None) -> None:
        self.status, self.reason = status, reason

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor] | None]:
        """Training batches, epoch after epoch; ``None`` marks the end of each epoch."""
        while True:
            yield from self.data.train_batches(
                self.batch_size, generator=self.generator, augment=self.recipe.augment
            )
            yield None

    def _advance(self, batch: tuple[torch.Tensor, torch.Tensor] | None) -> None:
        """Consume one batch (or an epoch end); sets ``status`` when the run is over."""
        every = self.recipe.eval_every
        if batch is None:
            if every is None:
                self._evaluate()
            return
        if self._out_of_time():
            return self._end(RunStatus.BUDGET, f"time budget of {self.budget.seconds:g}s reached")
        self._train_step(*batch)
        if self.status is not None:
            return
        if self.budget.done(self.step):
            return self._end(RunStatus.OK)
        if every and self.step % every == 0:
            self._evaluate()
            if self.status is not None:
                return
        self._report_progress()

    def run(self) -> TrainResult:
        self.model.train()
        self.clock.restart()
        for batch in self._batches():
            self._advance(batch)
            if self.status is not None:
                break
        last = self.history[-1] if self.history else None
        if self.status is not RunStatus.DIVERGED and (last is None or last.step != self.step):
            self._evaluate(final=True)
        self._report_progress(force=True)
        return _result(self)


def _closed_form_flops(spec: object) -> int | None:
    if not isinstance(spec, ModelSpec):
        return None
    from coatnet_nas.cost import estimate_cost

    return estimate_cost(spec).flops


def _result(run: _Run) -> TrainResult:
    """The run's outcome from its evaluations (the last one, or the window since)."""
    evals = run.history
    last = evals[-1] if evals else None
    if last is not None and last.step == run.step:
        loss, acc = last.train_loss, last.train_accuracy
    else:
        loss, acc = run.window.means(last)
    spec = getattr(run.model, "spec", None)
    return TrainResult(
        status=run.status or RunStatus.OK,
        val_accuracy=last.val_accuracy if last else 0.0,
        best_val_accuracy=max((e.val_accuracy for e in evals), default=0.0),
        train_loss=loss,
        train_accuracy=acc,
        epochs=run.step / run.steps_per_epoch,
        steps=run.step,
        seconds=run.budget.elapsed(),
        images_per_second=run.clock.rate(run.images_seen),
        params=sum(p.numel() for p in run.model.parameters()),
        flops=_closed_form_flops(spec),
        history=list(evals),
        reason=run.reason,
        images_seen=run.images_seen,
        device=str(run.device),
    )


def run_training(
    model: nn.Module, data: ProxyData, recipe: TrainRecipe, runtime: Runtime, seed: int,
    callback: Callback | None = None, progress: Progress | None = None,
) -> TrainResult:  # fmt: skip
    """Run the loop (the caller has seeded torch and capped threads)."""
    return _Run(model, data, recipe, runtime, seed, callback, progress).run()
