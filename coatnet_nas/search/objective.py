"""The per-trial objective: sample a spec, check the budget in closed form, train the proxy.

The budget is FLOPs and/or parameters from the closed-form cost model, and/or a latency limit
predicted from the study's latency table (milliseconds, no model built): all are checked before
anything is trained.

An over-budget candidate is never built: it gets a positive ``Trial.set_constraint`` value (so
TPE/NSGA-II learn the infeasible region) and ends PRUNED with ``status=over_budget``. A diverged
proxy ends PRUNED with ``status=diverged``; an exception (out of memory included) ends FAIL with
the reason in the trial's attributes. Every trial records its full normalized target spec and a
:class:`TrialStatus`.

``SearchConfig.proxy`` picks the score: ``train`` (default) trains the proxy recipe; any registered
training-free score (``naswot``, ``synflow``, ...; see :mod:`coatnet_nas.proxies`) scores an
untrained shrunken copy on one batch instead, in about a second. Such a trial still checks the
budget first, records the spec, ``proxy`` and ``proxy_score`` and returns the score (higher is
better); a non-finite score ends PRUNED with ``status=invalid_score``.

A trial of a promotion ladder carries ``rung`` and ``seed`` user attributes (enqueued with them;
a sampled trial is rung 0, seed 0): it trains with that rung's proxy recipe and that seed, and
only a sampled trial (rung 0, seed 0) reports to the pruner.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna

from coatnet_nas.cost import estimate_cost
from coatnet_nas.scaling import scale_spec
from coatnet_nas.search.attrs import readable_attrs, recipe_label
from coatnet_nas.search.config import SearchConfig, TrialStatus
from coatnet_nas.search.dedupe import KEY_ATTR, arch_key, copy_result, earlier_result

RUNG_ATTR = "rung"
SEED_ATTR = "seed"

__all__ = ["RUNG_ATTR", "SEED_ATTR", "Objective", "SearchConfig", "TrialStatus"]


@dataclass
class Objective:
    """Callable for ``study.optimize``; loads the proxy data set once per process.

    Over our ~120-line class guide: its branches (budget check, repeat of a known architecture,
    training proxy, training-free score) share the trial bookkeeping and stay readable side by
    side.
    """

    config: SearchConfig
    device: str = "auto"
    on_step: Callable[[int, Any], None] | None = None
    tensorboard: str | None = None  # a folder: one TensorBoard run folder per trained trial
    _board: Any = field(default=None, init=False, repr=False)
    _data: Any = field(default=None, init=False, repr=False)
    _evaluator: Any = field(default=None, init=False, repr=False)

    def data(self, recipe: Any = None) -> Any:
        """The proxy data set of ``recipe`` (default: rung 0's), loaded once per process.

        Every rung splits with the study's seed: one validation set whatever the training seed.
        """
        recipe = recipe or self.config.space.proxy
        key = (
            recipe.dataset,
            recipe.data_dir,
            recipe.image_size,
            recipe.subset,
            recipe.val_fraction,
        )
        if self._data is None:
            self._data = {}
        if key not in self._data:
            from coatnet_nas.data import prepare_data

            self._data[key] = prepare_data(
                recipe.dataset,
                recipe.image_size,
                subset=recipe.subset,
                val_fraction=recipe.val_fraction,
                seed=self.config.seed,
                device=self.device,
                data_dir=recipe.data_dir,
            )
        return self._data[key]

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        cfg = self.config
        spec = cfg.space.sample(trial)
        cost = estimate_cost(spec)
        rung, seed = rung_and_seed(trial)
        trial.set_user_attr(RUNG_ATTR, rung)
        trial.set_user_attr(SEED_ATTR, seed)
        trial.set_user_attr("spec", spec.to_dict())
        trial.set_user_attr("layout", spec.layout)
        trial.set_user_attr("depths", list(spec.depths))
        trial.set_user_attr("widths", list(spec.widths))
        trial.set_user_attr("params", cost.params)
        trial.set_user_attr("flops", cost.flops)
        latency_ms = cfg.latency_ms(spec)
        if latency_ms is not None:
            trial.set_user_attr("latency_ms", latency_ms)
        for name, text in readable_attrs(spec, cost, cfg, latency_ms).items():
            trial.set_user_attr(name, text)
        if rung:  # a promoted candidate is trained with its rung's recipe
            trial.set_user_attr("proxy_recipe", recipe_label(cfg.space.rung_recipe(rung)))
        key = arch_key(spec, cfg, rung, seed)
        trial.set_user_attr(KEY_ATTR, key)
        limit_ms = cfg.max_latency * 1e3 if cfg.max_latency is not None else None
        over = []
        for name, used, budget, shown in (
            ("flops", cost.flops, cfg.flops, f"flops {cost.flops:,} > budget {cfg.flops or 0:,}"),
            (
                "params",
                cost.params,
                cfg.params,
                f"params {cost.params:,} > budget {cfg.params or 0:,}",
            ),
            (
                "latency",
                latency_ms,
                limit_ms,
                f"predicted latency {latency_ms or 0:.2f} ms > limit {limit_ms or 0:.2f} ms",
            ),
        ):
            if budget is not None:
                violation = (used - budget) / budget
                with warnings.catch_warnings():
                    # a re-queued trial carries its constraint already: the same value, since the
                    # parameters (and so the cost) are the same
                    warnings.filterwarnings("ignore", message="The constraint value is ignored")
                    trial.set_constraint(name, violation)
                if violation > 0:
                    over.append(shown)
        if over:
            _finish(trial, TrialStatus.OVER_BUDGET, "; ".join(over))
            raise optuna.TrialPruned("over budget: " + "; ".join(over))
        extra = {"flops": cost.flops / 1e9, "params": cost.params / 1e6, "latency": latency_ms}
        study = getattr(trial, "study", None)  # a FixedTrial has none: nothing to reuse
        earlier = earlier_result(study, trial.number, key) if study is not None else None
        if earlier is not None:  # evaluated before in this study: reuse, do not train again
            copy_result(trial, earlier)
            if earlier.state == optuna.trial.TrialState.PRUNED:
                raise optuna.TrialPruned(f"same architecture as trial {earlier.number}")
            return earlier.values[0] if not cfg.multi_objective else tuple(earlier.values)
        if cfg.training_free:
            score = self._score(trial, spec)
            if not cfg.multi_objective:
                return score
            return (score, *(extra[o] for o in cfg.objectives[1:]))
        value: Any = None
        try:
            value = self._trained(trial, spec, (rung, seed), extra)
            return value
        finally:
            self._summarise(trial, rung, seed, value)

    def _trained(
        self, trial: optuna.Trial, spec: Any, rung_seed: tuple[int, int], extra: dict
    ) -> float | tuple[float, ...]:
        """Training branch: train the proxy, record its result, return the objective(s)."""
        cfg = self.config
        rung, seed = rung_seed
        try:
            result = self._train(trial, spec, rung, seed)
        except optuna.TrialPruned:
            _finish(trial, TrialStatus.PRUNED, "pruned by the pruner at an intermediate evaluation")
            raise
        except Exception as exc:
            cause = f" (cause: {exc.__cause__!r})" if exc.__cause__ is not None else ""
            _finish(trial, TrialStatus.ERROR, f"{type(exc).__name__}: {exc}{cause}"[:2000])
            raise
        for key in (
            "val_accuracy",
            "best_val_accuracy",
            "train_loss",
            "train_accuracy",
            "seconds",
            "images_per_second",
            "epochs",
        ):
            value = getattr(result, key)
            trial.set_user_attr(key, value if math.isfinite(value) else None)
        trial.set_user_attr("proxy_params", result.params)
        status = TrialStatus(result.status)  # the trainer's run status, by value
        if status is TrialStatus.DIVERGED:
            _finish(trial, status, result.reason or "non-finite training loss")
            raise optuna.TrialPruned("diverged: " + (result.reason or "non-finite loss"))
        _finish(trial, status, result.reason)
        accuracy = float(result.val_accuracy)
        if not cfg.multi_objective:
            return accuracy
        return (accuracy, *(extra[o] for o in cfg.objectives[1:]))

    def _board_run(self, trial: optuna.Trial, rung: int, seed: int) -> str | None:
        """The trial's TensorBoard run name (one per rung and seed the ladder trains it at)."""
        if self.tensorboard is None:
            return None
        if self._board is None:
            from coatnet_nas.train.tensorboard import TensorBoardRuns

            self._board = TensorBoardRuns(self.tensorboard)
        return f"trial_{trial.number:04d}_rung={rung}_seed={seed}"

    def _summarise(self, trial: optuna.Trial, rung: int, seed: int, value: Any) -> None:
        """The trial's objective(s) and status in its TensorBoard run, which is then closed."""
        run = self._board_run(trial, rung, seed)
        if run is None:
            return
        scalars = {}
        if value is not None:  # pruned or failed trials have none
            values = value if isinstance(value, tuple) else (value,)
            for name, v in zip(self.config.objectives, values, strict=True):
                if v is not None:
                    scalars[f"trial/objective/{name}"] = float(v)
        attrs = getattr(trial, "user_attrs", {}) or {}
        status = str(attrs.get("status", TrialStatus.ERROR.value))
        reason = attrs.get("reason")
        text = status if not reason else f"{status}: {reason}"
        self._board.summarise(run, scalars, {"trial/status": text})

    def _score(self, trial: optuna.Trial, spec: Any) -> float:
        """Training-free branch: one score of the untrained shrunken copy."""
        from coatnet_nas.proxies import ProxyEvaluator, parse_proxy

        cfg = self.config
        proxy = parse_proxy(cfg.proxy)
        if self._evaluator is None:
            self._evaluator = ProxyEvaluator(cfg.space.proxy, seed=cfg.seed, device=self.device)
        try:
            outcome = self._evaluator.evaluate(proxy, spec)
        except Exception as exc:
            _finish(trial, TrialStatus.ERROR, f"{type(exc).__name__}: {exc}"[:2000])
            raise
        finite = math.isfinite(outcome.value)
        trial.set_user_attr("proxy", proxy.label)
        trial.set_user_attr("proxy_score", outcome.value if finite else None)
        trial.set_user_attr("seconds", outcome.seconds)
        if not finite:
            reason = f"{proxy.label} score is {outcome.value} (degenerate architecture)"
            _finish(trial, TrialStatus.INVALID_SCORE, reason)
            raise optuna.TrialPruned(reason)
        _finish(trial, TrialStatus.OK, None)
        return float(outcome.value)

    def _train(self, trial: optuna.Trial, spec: Any, rung: int = 0, seed: int = 0) -> Any:
        from coatnet_nas.train import Runtime, train_spec

        recipe = self.config.space.rung_recipe(rung)
        proxy = scale_spec(spec, recipe.width_mult, recipe.depth_mult)
        data = self.data(recipe)
        # the pruner compares rung-0 learning curves of sampled candidates; a promoted one, or
        # a repeated seed measuring the proxy's noise, is trained in full
        prune = not self.config.multi_objective and rung == 0 and seed == 0

        def report(ev: Any) -> None:
            if prune:
                trial.report(ev.val_accuracy, ev.step)
                if _should_prune(trial):
                    raise optuna.TrialPruned(f"pruned at step {ev.step}")

        progress = (lambda info: self.on_step(trial.number, info)) if self.on_step else None
        run = self._board_run(trial, rung, seed)
        if run is not None:
            board, shown = self._board, progress

            def progress(info: Any) -> None:
                board.write(run, info)
                if shown is not None:
                    shown(info)

        return train_spec(
            proxy,
            data,
            recipe.train_recipe(data),
            report,
            runtime=Runtime(device=self.device),
            seed=training_seed(self.config.seed, seed),
            progress=progress,
        )


def _should_prune(trial: optuna.Trial) -> bool:
    """The pruner's call; while the database is away the training goes on (its result is
    journaled, see :mod:`~coatnet_nas.search.resilient`) rather than being thrown away."""
    from coatnet_nas.search.resilient import StorageUnavailable

    try:
        return trial.should_prune()
    except StorageUnavailable:
        return False


def rung_and_seed(trial: Any) -> tuple[int, int]:
    """The rung and seed a trial evaluates (a sampled trial: rung 0, seed 0)."""
    attrs = getattr(trial, "user_attrs", {}) or {}
    return int(attrs.get(RUNG_ATTR, 0)), int(attrs.get(SEED_ATTR, 0))


def training_seed(study_seed: int, seed: int) -> int:
    """Model init and batch order for seed ``seed`` (seed 0: the study's seed, as before)."""
    return study_seed + 1009 * seed


def _finish(trial: optuna.Trial, status: TrialStatus, reason: str | None) -> None:
    trial.set_user_attr("status", status.value)  # plain text: storages hold JSON
    if reason:
        trial.set_user_attr("reason", reason)
