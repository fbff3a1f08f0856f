"""Proxy recipes as strings, and scoring one architecture with one recipe.

A proxy is ``train`` (a short training run; the value is validation accuracy) or a registered
training-free score (:mod:`coatnet_nas.proxies.scores`), optionally with ``key=value`` options:
``train:epochs=1``, ``train:epochs=10,lr=0.001``, ``naswot:batch_size=128``. In a list, a
``key=value`` item without a name continues the previous proxy, so
``"train:epochs=1,subset=0.5,naswot,params"`` is three proxies.

Options start from the search space's :class:`~coatnet_nas.search.space.ProxyRecipe`: every
recipe field but ``dataset``/``data_dir`` can be overridden for ``train`` (use ``epochs=none`` for
a steps- or seconds-only budget), plus ``seed``. Training-free scores take ``batch_size`` (the
scored mini-batch, default 64), ``batches`` (averaged, default 1), ``seed`` and the
``width_mult``/``depth_mult``/``image_size``/``subset`` of the shrunken copy they score.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from coatnet_nas.errors import CoatnetError
from coatnet_nas.proxies.scores import compute_score, get_score

if TYPE_CHECKING:
    import torch

    from coatnet_nas.data import ProxyData
    from coatnet_nas.search.space import ProxyRecipe
    from coatnet_nas.spec import ModelSpec
    from coatnet_nas.train import TrainConfig

__all__ = [
    "TRAIN",
    "ProxyEvaluator",
    "ProxyOutcome",
    "ProxySpec",
    "parse_proxies",
    "parse_proxy",
    "train_config",
]

TRAIN = "train"
SCORE_BATCH = 64
_DATA_KEYS = ("image_size", "subset", "val_fraction")
_SCORE_KEYS = ("batch_size", "batches", "seed", "width_mult", "depth_mult", *_DATA_KEYS)
_FIXED = ("dataset", "data_dir")  # one data set per check/search: set it on the space


@dataclass(frozen=True)
class ProxySpec:
    """A parsed proxy: ``name`` (``train`` or a score) and its options as sorted pairs."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def is_training(self) -> bool:
        return self.name == TRAIN

    @property
    def label(self) -> str:
        """Canonical text, e.g. ``train:epochs=1`` (what tables, CSV and studies show)."""
        if not self.options:
            return self.name
        return self.name + ":" + ",".join(f"{k}={_fmt(v)}" for k, v in self.options)

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)


def _fmt(value: Any) -> str:
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(low)
        except ValueError:
            pass
    return text.strip()


def _allowed(name: str) -> tuple[str, ...]:
    if name == TRAIN:
        from coatnet_nas.search.space import ProxyRecipe

        return (*(k for k in ProxyRecipe.model_fields if k not in _FIXED), "seed")
    get_score(name)  # unknown names raise here
    return _SCORE_KEYS


def _build(name: str, items: list[str], source: str) -> ProxySpec:
    allowed = _allowed(name)
    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CoatnetError(f"proxy {source!r}: expected key=value, got {item!r}.")
        if key not in allowed:
            raise CoatnetError(
                f"proxy {source!r}: {name} has no option {key!r}; allowed: {', '.join(allowed)}."
            )
        options[key] = _value(raw)
    return ProxySpec(name, tuple(sorted(options.items())))


def parse_proxies(text: str) -> list[ProxySpec]:
    """``"train:epochs=1,naswot,params"`` -> proxies, in order (see the module docstring)."""
    groups: list[tuple[str, list[str]]] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        head, colon, rest = item.partition(":")
        if "=" in head and not colon:  # "key=value": continues the previous proxy
            if not groups:
                raise CoatnetError(f"proxies {text!r}: {item!r} has no proxy name before it.")
            groups[-1][1].append(item)
        elif "=" in head:
            raise CoatnetError(f"proxies {text!r}: {item!r} is not NAME or NAME:key=value.")
        else:
            groups.append((head.strip(), [rest] if colon else []))
    if not groups:
        raise CoatnetError(f"proxies {text!r}: name at least one proxy, e.g. 'naswot'.")
    out = [_build(name, items, text) for name, items in groups]
    labels = [p.label for p in out]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise CoatnetError(f"proxies {text!r}: {', '.join(dupes)} listed twice.")
    return out


def parse_proxy(text: str) -> ProxySpec:
    """Exactly one proxy, e.g. a ``--reference`` or ``--proxy`` value."""
    proxies = parse_proxies(text)
    if len(proxies) != 1:
        raise CoatnetError(f"expected one proxy, got {len(proxies)} in {text!r}.")
    return proxies[0]


def train_config(recipe: ProxyRecipe, data: ProxyData, seed: int, device: str) -> TrainConfig:
    """The :class:`TrainConfig` a proxy recipe means (shared by search trials and proxy checks)."""
    from coatnet_nas.train import TrainConfig

    steps_per_epoch = data.steps_per_epoch(recipe.batch_size)  # full batches, as the trainer runs
    return TrainConfig(
        epochs=recipe.epochs,
        steps=recipe.steps,
        seconds=recipe.seconds,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        device=device,
        seed=seed,
        eval_every=max(1, steps_per_epoch // recipe.evals_per_epoch),
        precise_bn=recipe.precise_bn,
    )


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

    def recipe(self, proxy: ProxySpec) -> ProxyRecipe:
        """The base recipe with the proxy's options applied (validated)."""
        from coatnet_nas.search.space import ProxyRecipe

        changes = {k: v for k, v in proxy.options if k in ProxyRecipe.model_fields}
        if not proxy.is_training:  # batch_size means the scored batch; the recipe's is for SGD
            changes.pop("batch_size", None)
        if not changes:
            return self.base
        try:
            return ProxyRecipe.model_validate({**self.base.model_dump(), **changes})
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(map(str, err["loc"])) or "options"
            raise CoatnetError(f"proxy {proxy.label!r}: {where}: {err['msg']}.") from None

    def seed_of(self, proxy: ProxySpec) -> int:
        return int(proxy.get("seed", self.seed))

    def data(self, proxy: ProxySpec) -> ProxyData:
        from coatnet_nas.data import prepare_data

        r = self.recipe(proxy)
        seed = self.seed_of(proxy) if proxy.is_training else self.seed
        key = (r.dataset, r.data_dir, r.image_size, r.subset, r.val_fraction, seed)
        if key not in self._data:
            self._data[key] = prepare_data(
                r.dataset, r.image_size, subset=r.subset, val_fraction=r.val_fraction,
                seed=seed, device=self.device, data_dir=r.data_dir,
            )  # fmt: skip
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

        recipe = self.recipe(proxy)
        shrunk = scale_spec(spec, recipe.width_mult, recipe.depth_mult)
        data = self.data(proxy)
        start = time.perf_counter()
        if proxy.is_training:
            from coatnet_nas.train import train_spec

            config = train_config(recipe, data, self.seed_of(proxy), self.device)
            result = train_spec(shrunk, data, config, callback, progress=progress)
            return ProxyOutcome(
                float(result.val_accuracy), time.perf_counter() - start, result.status,
                {"result": result},
            )  # fmt: skip
        from coatnet_nas.train import build_for_data

        model = build_for_data(shrunk, data, seed=self.seed_of(proxy))
        values = [
            compute_score(proxy.name, model, images, labels, seed=self.seed_of(proxy))
            for images, labels in self.score_batches(proxy)
        ]
        value = sum(values) / len(values)
        status = "ok" if math.isfinite(value) else "non_finite"
        return ProxyOutcome(value, time.perf_counter() - start, status)
