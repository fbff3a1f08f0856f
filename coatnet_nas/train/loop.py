"""The training loop: one short, budgeted run of a model on device-resident data.

A search runs hundreds of these, so the loop is lean (batches come from tensors already on the
device, loss/accuracy accumulate on the device), every budget (epochs, steps, seconds) is checked
between steps, and a diverging candidate ends with ``RunStatus.DIVERGED`` instead of an
exception: one bad architecture must never take a study down. Exceptions raised by the caller's
callback (``optuna.TrialPruned``) do propagate.

Under ``torch.distributed`` (see :mod:`distributed`) the same loop runs on every rank: the
recipe's ``batch_size`` is the *global* batch, split evenly over the ranks, gradients are
averaged by ``DistributedDataParallel``, every decision that ends the run is agreed by all ranks
and only rank 0 reports progress and writes checkpoints. With one process none of that runs.

(Over ~300 lines: the step, its budget checks, the rank agreement and the stop-signal poll
between steps are read together.)
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from coatnet_nas import signals
from coatnet_nas.data.devices import resolve_device
from coatnet_nas.data.stream import StreamingData
from coatnet_nas.data.tensors import ProxyData
from coatnet_nas.errors import CoatnetError
from coatnet_nas.spec import ModelSpec
from coatnet_nas.train.distributed import World
from coatnet_nas.train.ema import ModelEma
from coatnet_nas.train.measure import evaluate_run
from coatnet_nas.train.meters import _Budget, _MetricWindow, _StepClock
from coatnet_nas.train.recipe import Runtime, TrainRecipe
from coatnet_nas.train.result import EvalReport, ProgressInfo, RunStatus, TrainResult
from coatnet_nas.train.sampler import EpochSampler
from coatnet_nas.train.schedule import amp_dtype, autocast, lr_at, make_optimizer
from coatnet_nas.train.state import Checkpoints, restore_run

__all__ = [
    "Callback",
    "Progress",
    "_Budget",
    "_MetricWindow",
    "_StepClock",
    "run_training",
    "training_loss",
]

Callback = Callable[[EvalReport], bool | None]
Progress = Callable[[ProgressInfo], None]


class _Run:
    """One run's moving parts (the recipe says what, the runtime where); ``run()`` drives it.

    Over our ~120-line class guide on purpose: this is the step/evaluate/stop state machine, and
    the rest already lives in small objects (budget, metric window, step clock, sampler, EMA,
    checkpoints, evaluation in ``measure``); splitting the machine itself would scatter the order
    of one step across files.
    """

    def __init__(
        self,
        model: nn.Module,
        data: ProxyData | StreamingData,
        recipe: TrainRecipe,
        runtime: Runtime,
        seed: int,
        callback: Callback | None,
        progress: Progress | None,
        checkpoints: Checkpoints | None = None,
        resume: dict | None = None,
    ):
        start = time.perf_counter()  # the seconds budget covers the whole call, setup included
        self.recipe, self.seed, self.callback, self.progress = recipe, seed, callback, progress
        self.world = World.current()
        self.device = resolve_device(runtime.device)
        self.data = data.to(self.device)
        self.batch_size = _global_batch(recipe.batch_size, len(self.data.train), self.world)
        self.model = _placed(model, runtime, self.world, self.device)
        self.channels_last = runtime.channels_last
        self.amp_dtype = amp_dtype(runtime.amp, self.device)
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp_dtype == torch.float16
        )
        self.forward = torch.compile(self.model) if runtime.compile else self.model
        self.train_forward = self.forward
        if self.world.size > 1:  # gradients averaged over ranks; buckets overlap the backward
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_forward = nn.parallel.DistributedDataParallel(self.forward, ids)
        self.ema = ModelEma(self.model, recipe.ema) if recipe.ema is not None else None
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.model, recipe, self.device)
        self.steps_per_epoch = self.data.steps_per_epoch(self.batch_size)
        self.budget = _Budget(recipe, self.steps_per_epoch, start)
        self.window = _MetricWindow(self.device)
        self.sampler = _sampler(self.data, self.batch_size, self.world, seed, recipe.augment)
        # A non-finite check syncs the device; on CPU that is free, on a GPU do it every 25 steps
        # (and with several ranks, where the check is a collective, too).
        self.check_every = 1 if self.device.type == "cpu" and self.world.size == 1 else 25
        self.clock = _StepClock()
        self.step = self.images_seen = 0
        self.lr = 0.0
        self.eval_estimate: float | None = None
        self.history: list[EvalReport] = []
        self.status: RunStatus | None = None
        self.reason: str | None = None
        self._last_progress = 0.0
        self.checkpoints = checkpoints if self.world.main else None
        if self.checkpoints is not None:
            self.checkpoints.start()
        if resume is not None:
            restore_run(self, resume)

    # -- one step ---------------------------------------------------------------------------
    def _train_step(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if self.world.size > 1:  # stochastic depth per (seed, rank, step): resumes exactly
            torch.manual_seed(rank_step_seed(self.seed, self.world.rank, self.step))
        self.lr = lr_at(self.recipe, self.budget.schedule_position(self.step))
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.amp_dtype):
            logits = self.train_forward(images)
        loss = training_loss(logits.float(), labels, self.recipe.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.recipe.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.params, self.recipe.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update()
        hard = labels.argmax(dim=1) if labels.ndim == 2 else labels  # mixup: the larger share
        self.window.add(loss.detach(), logits.detach(), hard)
        self.step += 1
        self.images_seen += len(labels) * self.world.size
        if self.step % self.check_every == 0:
            bad = self.world.any(not bool(torch.isfinite(self.window.loss)), self.device)
            if bad:
                self._end(
                    RunStatus.DIVERGED,
                    f"non-finite training loss ({loss.item()}) by step "
                    f"{self.step} (lr {self.lr:.3g})",
                )
        self.clock.lap(first=self.step == 1)

    def _out_of_time(self) -> bool:
        """Would the next step (plus the final evaluation) overrun the seconds budget?"""
        if self.step == 0 or self.budget.seconds is None:
            return False  # at least one step always runs
        reserve = self.eval_estimate
        if reserve is None:  # no evaluation yet: forward-only costs ~1/3 of a training step
            images = len(self.data.val) + self.recipe.precise_bn * self.batch_size
            reserve = images / max(1.0, self.clock.rate(self.images_seen)) / 3
        return self.world.any(self.budget.would_overrun(self.clock.estimate, reserve), self.device)

    # -- evaluation -------------------------------------------------------------------------
    def _evaluate(self, final: bool = False) -> None:
        t0 = time.perf_counter()
        last = self.history[-1] if self.history else None
        accuracy, ema_accuracy = evaluate_run(
            self, recalibrate=last is None or self.step > last.step
        )
        self.eval_estimate = time.perf_counter() - t0
        train_loss, train_acc = self.window.means(last, self.world)
        report = EvalReport(
            step=self.step,
            epoch=self.step / self.steps_per_epoch,
            images_seen=self.images_seen,
            val_accuracy=accuracy,
            train_loss=train_loss,
            seconds=self.budget.elapsed(),
            train_accuracy=train_acc,
            lr=self.lr,
            ema_val_accuracy=ema_accuracy,
        )
        self.history.append(report)
        self.window.reset()
        stop = self.callback is not None and bool(self.callback(report))
        if self.world.any(stop, self.device) and not final:
            self._end(RunStatus.STOPPED, f"stopped by the callback at step {self.step}")
        self.clock.restart()

    def _report_progress(self, force: bool = False) -> None:
        now = time.perf_counter()
        if self.progress is None or not self.world.main:
            return
        if not force and now - self._last_progress < 0.25:
            return
        self._last_progress = now
        loss, acc = self.window.means(self.history[-1] if self.history else None)  # this rank's
        self.progress(
            ProgressInfo(
                step=self.step,
                total_steps=self.budget.total_steps,
                fraction=self.budget.fraction(self.step),
                epoch=self.step / self.steps_per_epoch,
                seconds=self.budget.elapsed(),
                train_loss=loss,
                train_accuracy=acc,
                images_per_second=self.clock.rate(self.images_seen),
                val_accuracy=self.history[-1].val_accuracy if self.history else None,
                lr=getattr(self, "lr", None),
            )
        )

    # -- driver -----------------------------------------------------------------------------
    def _end(self, status: RunStatus, reason: str | None = None) -> None:
        self.status, self.reason = status, reason

    def _advance(self, batch: tuple[torch.Tensor, torch.Tensor] | None) -> None:
        """Consume one batch (or an epoch end); sets ``status`` when the run is over."""
        every = self.recipe.eval_every
        if batch is None:
            if every is None:
                self._evaluate()
            if self.checkpoints is not None and self.status is None:
                self.checkpoints.save(self)  # at least once per epoch
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
        if self.checkpoints is not None and self.checkpoints.due():
            self.checkpoints.save(self)
        self._report_progress()

    def _poll_signals(self) -> None:
        """Between steps (before the next batch is drawn, so a resume replays it): a SIGUSR1
        saves the run now; a stop signal (SIGTERM, Ctrl-C) saves it and raises
        :class:`~coatnet_nas.signals.Terminated` (``KeyboardInterrupt`` for Ctrl-C). Under DDP
        the ranks agree every ``check_every`` steps, so all of them stop at the same step."""
        if not signals.listening():
            signals.check()  # a stop raised where it was swallowed (a finalizer): raise it here
            return
        if self.checkpoints is not None and signals.checkpoint_requested():
            self.checkpoints.save(self)
        signum = signals.pending()
        if self.world.size > 1:
            if self.step % self.check_every:
                return
            if not self.world.any(signum is not None, self.device):
                return
            signum = signum or signals.STOP_SIGNALS[0]  # another rank was told
        if signum is None:
            return
        stop = signals.interrupt_for(signum)
        if self.checkpoints is not None:  # what was saved travels with the stop, for the CLI
            self.checkpoints.save(self)
            stop.checkpoint, stop.checkpoint_error = (
                self.checkpoints.written,
                self.checkpoints.error,
            )
        stop.step = self.step
        close = getattr(self.sampler, "close", None)
        if close is not None:
            close()
        raise stop

    def run(self) -> TrainResult:
        self.model.train()
        self.clock.restart()
        while self.status is None and not self.budget.done(self.step):
            self._poll_signals()
            self._advance(self.sampler.next_batch())
        if self.status is None:
            self._end(RunStatus.OK)
        close = getattr(self.sampler, "close", None)
        if close is not None:  # streaming: stop the epoch's loader workers before evaluating
            close()
        last = self.history[-1] if self.history else None
        if self.status is not RunStatus.DIVERGED and (last is None or last.step != self.step):
            self._evaluate(final=True)
        self._report_progress(force=True)
        result = _result(self)
        if self.checkpoints is not None:
            self.checkpoints.save(self, result)
        return result


def rank_step_seed(seed: int, rank: int, step: int) -> int:
    """The torch seed of one rank's step under DDP: no rank's RNG stream needs storing to resume."""
    return (seed * 1_000_003 + rank) * 1_000_033 + step


def training_loss(logits: torch.Tensor, labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Cross-entropy against class ids ``(B,)`` or soft targets ``(B, classes)`` (mixup/cutmix).

    Soft targets are class probabilities: the loss is ``-(target * log_softmax).sum(1).mean()``,
    with label smoothing mixed into the target as for hard labels.
    """
    return F.cross_entropy(logits, labels, label_smoothing=smoothing)


def _sampler(
    data: ProxyData | StreamingData, batch_size: int, world: World, seed: int, augment: bool
):
    """Batches from device tensors (sharded over ranks) or streamed from files (one process)."""
    if isinstance(data, StreamingData):
        if world.size > 1:
            raise CoatnetError(
                "streaming input runs in one process; train with nproc 1 (or prepare a cache "
                "and train data-parallel from it).",
                param="nproc",
            )
        return data.sampler(batch_size, seed, augment)
    return EpochSampler(data, batch_size, world.rank, world.size, seed, augment)


def _global_batch(batch_size: int, train_images: int, world: World) -> int:
    """The global batch (capped by the data), which the ranks must split evenly."""
    size = min(batch_size, train_images)
    if size % world.size:
        raise CoatnetError(
            f"batch_size {size} (the global batch) cannot be split evenly over {world.size} "
            f"processes; use a multiple of {world.size}.",
            param="batch_size",
        )
    return size


def _placed(model: nn.Module, runtime: Runtime, world: World, device: torch.device) -> nn.Module:
    if runtime.sync_batchnorm and world.size > 1:
        if device.type != "cuda":
            raise CoatnetError(
                "sync_batchnorm needs CUDA devices (torch's SyncBatchNorm has no CPU kernel); "
                "train without it on CPU.",
                param="sync_batchnorm",
            )
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


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
        loss, acc = run.window.means(last, run.world)
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
        ema_val_accuracy=last.ema_val_accuracy if last else None,
        world_size=run.world.size,
    )


def run_training(
    model: nn.Module,
    data: ProxyData | StreamingData,
    recipe: TrainRecipe,
    runtime: Runtime,
    seed: int,
    callback: Callback | None = None,
    progress: Progress | None = None,
    checkpoints: Checkpoints | None = None,
    resume: dict | None = None,
) -> TrainResult:
    """Run the loop (the caller has seeded torch and capped threads)."""
    return _Run(model, data, recipe, runtime, seed, callback, progress, checkpoints, resume).run()
