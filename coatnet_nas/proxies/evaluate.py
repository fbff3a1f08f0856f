"""Scoring one architecture with one proxy: a short training run or a training-free score."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coatnet_nas.errors import CoatnetError
from coatnet_nas.proxies.parse import ProxySpec
from coatnet_nas.proxies.recipe import TRAINING_OPTIONS, ProxyRecipe
from coatnet_nas.proxies.scores import compute_score

if TYPE_CHECKING:
    import torch

    from coatnet_nas.data import ProxyData
    from coatnet_nas.spec import ModelSpec

__all__ = ["SCORE_BATCH", "ProxyEvaluator", "ProxyOutcome"]

SCORE_BATCH = 64


@dataclass
class ProxyOutcome:
    """One proxy value for one architecture; ``detail`` holds the training result, if any."""

    value: float
    seconds: float
    status: str = "ok"
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProxyEvaluator:
    """Scores target-size specs with proxies; each distinct data set is prepared once.

    Specs are shrunk by the recipe's ``width_mult``/``depth_mult`` and adapted to the data (image
    size, classes, channels) exactly as search trials do, so a proxy check measures the scores a
    search would see.
    """

    base: ProxyRecipe
    seed: int = 0
    device: str = "auto"
    _data: dict[tuple, ProxyData] = field(default_factory=dict, init=False, repr=False)
    _supernets: dict[tuple, Any] = field(default_factory=dict, init=False, repr=False)

    def with_seed(self, seed: int) -> ProxyEvaluator:
        """The same evaluator for another seed; prepared data and loaded supernets are shared."""
        other = ProxyEvaluator(self.base, seed=seed, device=self.device)
        other._data, other._supernets = self._data, self._supernets
        return other

    def supernet(self, proxy: ProxySpec) -> Any:
        """The loaded supernet of a ``supernet:SUPER.pt`` proxy (each file is read once; the
        calibration seed is given per score, see ``evaluate``)."""
        from coatnet_nas.supernet.score import SupernetScorer

        options = {k: v for k, v in proxy.options if k != "seed"}
        key = tuple(sorted(options.items()))
        if key not in self._supernets:
            self._supernets[key] = SupernetScorer(
                options.pop("path"),
                device=self.device,
                **{k: int(v) for k, v in options.items()},
            )
        return self._supernets[key]

    def recipe(self, proxy: ProxySpec) -> ProxyRecipe:
        """The base recipe with the proxy's options applied (validated)."""
        changes = {k: v for k, v in proxy.options if k in TRAINING_OPTIONS}
        if not proxy.is_training:  # batch_size means the scored batch; the recipe's is for SGD
            changes.pop("batch_size", None)
        try:
            return self.base.evolve(**changes)
        except CoatnetError as exc:
            raise CoatnetError(f"proxy {proxy.label!r}: {exc}", param=exc.param) from None

    def seed_of(self, proxy: ProxySpec) -> int:
        return int(proxy.get("seed", self.seed))

    def data(self, proxy: ProxySpec) -> ProxyData:
        from coatnet_nas.data import prepare_data

        if proxy.is_supernet:  # the held-out split of the data the supernet trained on
            return self.supernet(proxy).data
        r = self.recipe(proxy)
        seed = self.seed_of(proxy) if proxy.is_training else self.seed
        key = (r.dataset, r.data_dir, r.image_size, r.subset, r.val_fraction, seed)
        if key not in self._data:
            self._data[key] = prepare_data(
                r.dataset,
                r.image_size,
                subset=r.subset,
                val_fraction=r.val_fraction,
                seed=seed,
                device=self.device,
                data_dir=r.data_dir,
            )
        return self._data[key]

    def score_batches(self, proxy: ProxySpec) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The fixed, unaugmented batches every architecture is scored on (same for all)."""
        import torch

        data = self.data(proxy)
        batch_size = int(proxy.get("batch_size", SCORE_BATCH))
        count = int(proxy.get("batches", 1))
        if batch_size < 2 or count < 1:
            raise CoatnetError(f"proxy {proxy.label!r}: need batch_size >= 2 and batches >= 1.")
        generator = torch.Generator(device=data.device)
        generator.manual_seed(self.seed_of(proxy))
        out = []
        for images, labels in data.train_batches(batch_size, generator=generator, augment=False):
            out.append((images, labels))
            if len(out) == count:
                break
        return out

    def evaluate(
        self,
        proxy: ProxySpec,
        spec: ModelSpec,
        callback: Callable[[Any], bool | None] | None = None,
        progress: Callable[[Any], None] | None = None,
    ) -> ProxyOutcome:
        """Value of ``proxy`` for the target-size ``spec`` (higher is better)."""
        from coatnet_nas.scaling import scale_spec

        if proxy.is_supernet:
            start = time.perf_counter()
            value, detail = self.supernet(proxy).score(spec, seed=self.seed_of(proxy))
            return ProxyOutcome(value, time.perf_counter() - start, "ok", detail)
        recipe = self.recipe(proxy)
        shrunk = scale_spec(spec, recipe.width_mult, recipe.depth_mult)
        data = self.data(proxy)
        start = time.perf_counter()
        if proxy.is_training:
            from coatnet_nas.train import Runtime, train_spec

            result = train_spec(
                shrunk,
                data,
                recipe.train_recipe(data),
                callback,
                runtime=Runtime(device=self.device),
                seed=self.seed_of(proxy),
                progress=progress,
            )
            return ProxyOutcome(
                float(result.val_accuracy),
                time.perf_counter() - start,
                result.status,
                {"result": result},
            )
        from coatnet_nas.train import build_for_data

        model = build_for_data(shrunk, data, seed=self.seed_of(proxy))
        values = [
            compute_score(proxy.name, model, images, labels, seed=self.seed_of(proxy))
            for images, labels in self.score_batches(proxy)
        ]
        value = sum(values) / len(values)
        status = "ok" if math.isfinite(value) else "non_finite"
        return ProxyOutcome(value, time.perf_counter() - start, status)
