"""Proxy trainer: score an architecture by a short, budgeted training run.

A search runs hundreds of these, so the loop is lean (batches come from tensors already on the
device, loss/accuracy accumulate on the device), every budget (epochs, steps, seconds) is checked
between steps, and a diverging candidate ends with ``status="diverged"`` instead of an exception:
one bad architecture must never take a study down. Exceptions raised by the caller's callback
(``optuna.TrialPruned``) do propagate.

Schedule: AdamW, linear warm-up then cosine decay over the planned steps (or, with only a time
budget, over the seconds). Runs with an epoch/step budget are reproducible on CPU for a seed.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from coatnet_nas.data.devices import resolve_device
from coatnet_nas.data.tensors import ProxyData
from coatnet_nas.errors import CoatnetError, SpecError
from coatnet_nas.spec import ModelSpec, spec_from_dict
from coatnet_nas.threads import cpu_threads
from coatnet_nas.train.recipe import Runtime, TrainConfig, TrainRecipe

__all__ = [
    "EvalReport",
    "ProgressInfo",
    "TrainConfig",
    "TrainResult",
    "build_for_data",
    "evaluate",
    "load_checkpoint",
    "recalibrate_batchnorm",
    "resolve_device",
    "save_checkpoint",
    "train_model",
    "train_spec",
]

STATUSES = ("ok", "diverged", "budget", "stopped")


@dataclass
class EvalReport:
    """One evaluation, handed to the callback (which may stop the run or raise to prune)."""

    step: int
    epoch: float
    images_seen: int
    val_accuracy: float
    train_loss: float
    seconds: float
    train_accuracy: float = 0.0
    lr: float = 0.0


@dataclass
class ProgressInfo:
    """A throttled snapshot for progress bars (the library itself never prints)."""

    step: int
    total_steps: int | None
    fraction: float  # of the budget consumed, 0..1
    epoch: float
    seconds: float
    train_loss: float
    train_accuracy: float
    images_per_second: float
    val_accuracy: float | None


@dataclass
class TrainResult:
    """The outcome of one run; ``to_dict()`` is its JSON form.

    ``status``: ``ok`` (planned epochs/steps done), ``budget`` (the seconds budget ended it),
    ``stopped`` (the callback asked to stop), ``diverged`` (non-finite loss; accuracies are
    those of the last evaluation before, 0 if none).
    """

    status: str
    val_accuracy: float
    best_val_accuracy: float
    train_loss: float
    train_accuracy: float
    epochs: float
    steps: int
    seconds: float
    images_per_second: float
    params: int
    flops: int | None
    history: list[EvalReport] = field(default_factory=list)
    reason: str | None = None
    images_seen: int = 0
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (non-finite floats become None: JSON has no NaN)."""
        return json_safe(asdict(self))


def json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


# --- schedule, optimizer, precision ----------------------------------------------------------
def lr_at(config: TrainRecipe, progress: float) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``lr * final_lr_scale``."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < config.warmup:
        return config.lr * progress / config.warmup
    t = (progress - config.warmup) / max(1e-12, 1.0 - config.warmup)
    scale = config.final_lr_scale + (1 - config.final_lr_scale) * 0.5 * (1 + math.cos(math.pi * t))
    return config.lr * scale


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases, norm scales and relative-position tables (standard for ViTs)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith("bias_table") else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(
    model: nn.Module, config: TrainRecipe, device: torch.device
) -> torch.optim.AdamW:
    """AdamW, fused into one kernel where torch supports it (a per-tensor loop costs more)."""
    groups = param_groups(model, config.weight_decay)
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.AdamW(groups, lr=config.lr, fused=True)
        except (RuntimeError, TypeError):  # older torch, or an unsupported dtype/device
            pass
    return torch.optim.AdamW(groups, lr=config.lr)


def _amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "fp16":
        return torch.float16
    if mode == "bf16" or (device.type == "cuda" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _rng_fork(device: torch.device):
    """Seed locally: a proxy run must not disturb (or depend on) the caller's RNG state."""
    devices = [device.index or 0] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices)


def _count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _flops_of(model: nn.Module) -> int | None:
    spec = getattr(model, "spec", None)
    if isinstance(spec, ModelSpec):
        from coatnet_nas.cost import estimate_cost

        return estimate_cost(spec).flops
    return None


# --- evaluation ------------------------------------------------------------------------------
@torch.inference_mode()
def evaluate(
    model: nn.Module,
    data: ProxyData,
    batch_size: int = 512,
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> float:
    """Top-1 accuracy on ``data.val`` (0..1); restores the model's train/eval mode."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=data.device)
    try:
        for images, labels in data.val_batches(batch_size):
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with _autocast(data.device, amp_dtype):
                logits = model(images)
            correct += (logits.argmax(dim=1) == labels).sum()
    finally:
        model.train(was_training)
    return correct.item() / max(1, len(data.val))


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module,
    data: ProxyData,
    batches: int,
    batch_size: int,
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    seed: int = 0,
) -> int:
    """Recompute every BatchNorm's statistics over training batches ("precise BN").

    The weights are fixed and the rest of the model is in eval mode (no stochastic depth), so
    the statistics are those evaluation will see. fvcore's ``update_bn_stats`` does the
    population averaging; the batches are unaugmented, like evaluation images, and drawn with
    their own generator so the training order is unchanged. Returns the batches used (0 when
    the model has no BatchNorm or ``batches`` is 0); restores the model's mode.
    """
    from fvcore.nn.precise_bn import BN_MODULE_TYPES, update_bn_stats

    norms = [m for m in model.modules() if isinstance(m, BN_MODULE_TYPES)]
    batch_size = min(batch_size, len(data.train))
    batches = min(batches, data.steps_per_epoch(batch_size))
    if not norms or batches < 1:
        return 0
    was_training = model.training
    generator = torch.Generator(device=data.device)
    generator.manual_seed(seed)

    def images() -> Iterator[torch.Tensor]:
        for batch, _ in data.train_batches(batch_size, generator=generator, augment=False):
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            yield batch

    model.eval()
    for norm in norms:
        norm.train()
    try:
        with _autocast(data.device, amp_dtype):
            update_bn_stats(model, images(), num_iters=batches)
    finally:
        model.train(was_training)
    return batches


# --- the loop --------------------------------------------------------------------------------
class _Run:
    """State of one training run; :meth:`run` returns the :class:`TrainResult`."""

    def __init__(self, model: nn.Module, data: ProxyData, config: TrainRecipe,
                 runtime: Runtime, seed: int,
                 callback: Callable[[EvalReport], bool | None] | None,
                 progress: Callable[[ProgressInfo], None] | None):  # fmt: skip
        self.start = time.perf_counter()
        self.config, self.callback, self.progress = config, callback, progress
        self.runtime, self.seed = runtime, seed
        self.device = resolve_device(runtime.device)
        self.data = data.to(self.device)
        self.model = model.to(self.device)
        self.channels_last = runtime.channels_last
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.amp_dtype = _amp_dtype(runtime.amp.value, self.device)
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp_dtype == torch.float16
        )
        self.forward = torch.compile(self.model) if runtime.compile else self.model
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.model, config, self.device)
        self.batch_size = min(config.batch_size, len(self.data.train))
        self.steps_per_epoch = self.data.steps_per_epoch(self.batch_size)
        planned = []
        if config.epochs is not None:
            planned.append(max(1, math.ceil(config.epochs * self.steps_per_epoch)))
        if config.steps is not None:
            planned.append(config.steps)
        self.total_steps = min(planned) if planned else None
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        # A non-finite check syncs the device; on CPU that is free, on a GPU do it every 25 steps.
        self.check_every = 1 if self.device.type == "cpu" else 25
        self.step = 0
        self.images_seen = 0
        self.train_seconds = 0.0
        self.step_estimate = 0.0
        self.eval_estimate: float | None = None
        self.lr = 0.0
        self.history: list[EvalReport] = []
        self.last_eval_step = -1
        self.status: str | None = None
        self.reason: str | None = None
        self._reset_window()
        self._last_progress = 0.0
        self._tick = time.perf_counter()

    # -- helpers ----------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def _reset_window(self) -> None:
        self.loss_sum = torch.zeros((), device=self.device)
        self.correct_sum = torch.zeros((), dtype=torch.long, device=self.device)
        self.window_images = 0
        self.window_steps = 0

    def _window(self) -> tuple[float, float]:
        if self.window_steps == 0:
            last = self.history[-1] if self.history else None
            return (last.train_loss, last.train_accuracy) if last else (float("nan"), 0.0)
        return (
            self.loss_sum.item() / self.window_steps,
            self.correct_sum.item() / max(1, self.window_images),
        )

    def _progress_fraction(self) -> float:
        fractions = []
        if self.total_steps:
            fractions.append(self.step / self.total_steps)
        if self.config.seconds:
            fractions.append(self.elapsed() / self.config.seconds)
        return min(1.0, max(fractions, default=0.0))

    def _schedule_progress(self) -> float:
        """LR schedule position: by steps when a step budget exists (reproducible), else by time."""
        if self.total_steps:
            return (self.step + 1) / self.total_steps
        return self.elapsed() / self.config.seconds  # type: ignore[operator]

    def _out_of_time(self) -> bool:
        """Would the next step (plus the final evaluation) overrun the seconds budget?"""
        seconds = self.config.seconds
        if seconds is None or self.step == 0:
            return False
        reserve = self.eval_estimate
        if reserve is None:  # no evaluation yet: forward-only costs ~1/3 of a training step
            images = len(self.data.val) + self.config.precise_bn * self.batch_size
            reserve = images / max(1.0, self.images_seen / self.train_seconds) / 3
        return self.elapsed() + self.step_estimate + reserve > seconds

    # -- one step ---------------------------------------------------------------------------
    def _train_step(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.lr = lr_at(self.config, self._schedule_progress())
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with _autocast(self.device, self.amp_dtype):
            logits = self.forward(images)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.config.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        loss = loss.detach()
        self.loss_sum += loss
        self.correct_sum += (logits.detach().argmax(dim=1) == labels).sum()
        self.step += 1
        self.images_seen += len(labels)
        self.window_images += len(labels)
        self.window_steps += 1
        if self.step % self.check_every == 0 and not torch.isfinite(self.loss_sum):
            self.status = "diverged"
            self.reason = (
                f"non-finite training loss ({loss.item()}) by step {self.step} (lr {self.lr:.3g})"
            )
        # A step's time runs from the end of the previous step (or evaluation), so it includes
        # drawing and augmenting its batch: throughput and budget checks see the real cost.
        now = time.perf_counter()
        duration, self._tick = now - self._tick, now
        self.train_seconds += duration
        self.step_estimate = (
            duration if self.step == 1 else 0.7 * self.step_estimate + 0.3 * duration
        )

    # -- evaluation -------------------------------------------------------------------------
    def _evaluate(self, final: bool = False) -> None:
        t0 = time.perf_counter()
        if self.config.precise_bn and self.step > self.last_eval_step:
            recalibrate_batchnorm(
                self.model, self.data, self.config.precise_bn, self.batch_size,
                amp_dtype=self.amp_dtype, channels_last=self.channels_last, seed=self.seed,
            )  # fmt: skip
        accuracy = evaluate(
            self.forward,
            self.data,
            self.config.eval_batch_size,
            amp_dtype=self.amp_dtype,
            channels_last=self.channels_last,
        )
        self.eval_estimate = time.perf_counter() - t0
        train_loss, train_acc = self._window()
        report = EvalReport(
            step=self.step, epoch=self.step / self.steps_per_epoch, images_seen=self.images_seen,
            val_accuracy=accuracy, train_loss=train_loss, seconds=self.elapsed(),
            train_accuracy=train_acc, lr=self.lr,
        )  # fmt: skip
        self.history.append(report)
        self.last_eval_step = self.step
        self._reset_window()
        if self.callback is not None and self.callback(report) and not final:
            self.status = "stopped"
            self.reason = f"stopped by the callback at step {self.step}"
        self._tick = time.perf_counter()  # nor is the callback's

    def _report_progress(self, force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.perf_counter()
        if not force and now - self._last_progress < 0.25:
            return
        self._last_progress = now
        loss, acc = self._window()
        self.progress(ProgressInfo(
            step=self.step, total_steps=self.total_steps, fraction=self._progress_fraction(),
            epoch=self.step / self.steps_per_epoch, seconds=self.elapsed(), train_loss=loss,
            train_accuracy=acc, images_per_second=self.images_seen / max(self.train_seconds, 1e-9),
            val_accuracy=self.history[-1].val_accuracy if self.history else None,
        ))  # fmt: skip

    # -- driver -----------------------------------------------------------------------------
    def _epochs(self) -> Iterator[Iterator[tuple[torch.Tensor, torch.Tensor]]]:
        while True:
            yield self.data.train_batches(
                self.batch_size, generator=self.generator, augment=self.config.augment
            )

    def run(self) -> TrainResult:
        self.model.train()
        self._tick = time.perf_counter()
        for batches in self._epochs():
            for images, labels in batches:
                if self._out_of_time():
                    self.status = "budget"
                    self.reason = f"time budget of {self.config.seconds:g}s reached"
                    break
                self._train_step(images, labels)
                if self.status:
                    break
                if self.total_steps is not None and self.step >= self.total_steps:
                    self.status = "ok"
                    break
                if self.config.eval_every and self.step % self.config.eval_every == 0:
                    self._evaluate()
                    if self.status:
                        break
                self._report_progress()
            else:  # a full epoch ended
                if self.config.eval_every is None:
                    self._evaluate()
                if self.status is None:
                    continue
            break
        if self.status != "diverged" and self.last_eval_step != self.step:
            self._evaluate(final=True)
        self._report_progress(force=True)
        return self._result()

    def _result(self) -> TrainResult:
        evals = self.history
        last = evals[-1] if evals else None
        if last is not None and last.step == self.step:
            loss, acc = last.train_loss, last.train_accuracy
        else:
            loss, acc = self._window()
        return TrainResult(
            status=self.status or "ok",
            val_accuracy=last.val_accuracy if last else 0.0,
            best_val_accuracy=max((e.val_accuracy for e in evals), default=0.0),
            train_loss=loss,
            train_accuracy=acc,
            epochs=self.step / self.steps_per_epoch,
            steps=self.step,
            seconds=self.elapsed(),
            images_per_second=self.images_seen / max(self.train_seconds, 1e-9),
            params=_count_params(self.model),
            flops=_flops_of(self.model),
            history=list(evals),
            reason=self.reason,
            images_seen=self.images_seen,
            device=str(self.device),
        )


def _resolve(
    recipe: TrainRecipe | TrainConfig, runtime: Runtime | None, seed: int | None
) -> tuple[TrainRecipe, Runtime, int]:
    if isinstance(recipe, TrainConfig):  # deprecated flat form
        flat_recipe, flat_runtime, flat_seed = recipe.split()
        return flat_recipe, runtime or flat_runtime, flat_seed if seed is None else seed
    return recipe, runtime or Runtime(), 0 if seed is None else seed


def train_model(
    model: nn.Module,
    data: ProxyData,
    recipe: TrainRecipe | TrainConfig,
    callback: Callable[[EvalReport], bool | None] | None = None,
    *,
    runtime: Runtime | None = None,
    seed: int | None = None,
    progress: Callable[[ProgressInfo], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``data`` with ``recipe``, on ``runtime`` (default: auto).

    ``callback(report)`` runs after every evaluation (each epoch, or every ``eval_every`` steps,
    and once at the end); returning True stops the run (``status="stopped"``); exceptions it
    raises propagate. ``progress`` receives throttled :class:`ProgressInfo` snapshots. Runs with
    an epoch/step budget are reproducible on CPU for a ``seed``.
    """
    recipe, runtime, seed = _resolve(recipe, runtime, seed)
    device = resolve_device(runtime.device)
    with _rng_fork(device), cpu_threads(runtime.threads):
        torch.manual_seed(seed)
        return _Run(model, data, recipe, runtime, seed, callback, progress).run()


# --- specs -----------------------------------------------------------------------------------
def spec_problem(exc: ValidationError) -> str:
    """The user-facing reason a spec change failed validation."""
    errors = exc.errors(include_url=False)
    cause = (errors[0].get("ctx") or {}).get("error") if errors else None
    return str(cause) if cause else "; ".join(e["msg"] for e in errors)


def spec_for_data(
    spec: ModelSpec, data: ProxyData, drop_path_rate: float | None = None
) -> ModelSpec:
    """``spec`` at the data's image size, classes and channels (and optional stochastic depth)."""
    changes: dict[str, Any] = {
        "image_size": data.image_size, "num_classes": data.num_classes, "in_chans": data.in_chans,
    }  # fmt: skip
    if drop_path_rate is not None:
        changes["drop_path_rate"] = drop_path_rate
    try:
        return spec.evolve(**changes)
    except ValidationError as exc:
        h, w = data.image_size
        raise SpecError(
            f"{spec.name} cannot be trained on {data.name} at {h}x{w}: {spec_problem(exc)}"
        ) from None


def build_for_data(
    spec: ModelSpec, data: ProxyData, *, drop_path_rate: float | None = None, seed: int = 0
) -> nn.Module:
    """The model of ``spec`` adapted to ``data``, initialized reproducibly from ``seed``."""
    from coatnet_nas.builder import CoAtNet

    adapted = spec_for_data(spec, data, drop_path_rate)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CoAtNet(adapted)


def train_spec(
    spec: ModelSpec,
    data: ProxyData,
    recipe: TrainRecipe | TrainConfig,
    callback: Callable[[EvalReport], bool | None] | None = None,
    *,
    runtime: Runtime | None = None,
    seed: int | None = None,
    progress: Callable[[ProgressInfo], None] | None = None,
) -> TrainResult:
    """Build ``spec`` for ``data`` (image size, classes, channels) and train it.

    ``params`` is the built model's exact count and ``flops`` the closed-form
    :func:`coatnet_nas.cost.estimate_cost` of the adapted spec.
    """
    recipe, runtime, seed = _resolve(recipe, runtime, seed)
    model = build_for_data(spec, data, drop_path_rate=recipe.drop_path_rate, seed=seed)
    return train_model(model, data, recipe, callback, runtime=runtime, seed=seed, progress=progress)


# --- checkpoints -----------------------------------------------------------------------------
def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    spec: ModelSpec | None = None,
    result: TrainResult | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> Path:
    """Write weights (plus spec, result and optimizer state) as plain tensors and containers.

    Only types that ``torch.load(weights_only=True)`` accepts are stored, so loading never
    unpickles code. The file is written to a temporary name and renamed into place.
    """
    path = Path(path)
    spec = spec if spec is not None else getattr(model, "spec", None)
    payload: dict[str, Any] = {
        "format": "coatnet-nas/checkpoint-1",
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "spec": spec.to_dict() if isinstance(spec, ModelSpec) else None,
        "result": result.to_dict() if result is not None else None,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(payload, tmp)
        tmp.replace(path)
    except OSError as exc:
        raise CoatnetError(f"{path}: cannot write checkpoint ({exc.strerror or exc}).") from None
    return path


@dataclass
class Checkpoint:
    state_dict: dict[str, torch.Tensor]
    spec: ModelSpec | None
    result: dict[str, Any] | None
    optimizer: dict[str, Any] | None

    def build(self) -> nn.Module:
        """Rebuild the model from the stored spec and load the weights."""
        from coatnet_nas.builder import CoAtNet

        if self.spec is None:
            raise CoatnetError(
                "this checkpoint has no spec; build the model yourself and load state_dict."
            )
        model = CoAtNet(self.spec)
        model.load_state_dict(self.state_dict)
        return model


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint with ``weights_only=True`` (no arbitrary code runs)."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CoatnetError(f"{path}: no such checkpoint.") from None
    except Exception as exc:  # corrupt file or disallowed content: a user-facing problem
        raise CoatnetError(f"{path}: not a loadable checkpoint ({exc}).") from None
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise CoatnetError(f"{path}: not a coatnet-nas checkpoint.")
    spec = spec_from_dict(payload["spec"], source=str(path)) if payload.get("spec") else None
    return Checkpoint(payload["state_dict"], spec, payload.get("result"), payload.get("optimizer"))
