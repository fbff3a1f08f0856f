"""Proxy recipes as strings, and scoring one architecture with one recipe.

A proxy is ``train`` (a short training run; the value is validation accuracy) or a registered
training-free score (:mod:`coatnet_nas.proxies.scores`), optionally with ``key=value`` options:
``train:epochs=1``, ``train:epochs=10,lr=0.001``, ``naswot:batch_size=128``. In a list, a
``key=value`` item without a name continues the previous proxy, so
``"train:epochs=1,subset=0.5,naswot,params"`` is three proxies.

Options start from the search space's :class:`~coatnet_nas.proxies.recipe.ProxyRecipe`: every
recipe field but ``dataset``/``data_dir`` can be overridden for ``train`` (use ``epochs=none`` for
a steps- or seconds-only budget), plus ``seed``. Training-free scores take ``batch_size`` (the
scored mini-batch, default 64), ``batches`` (averaged, default 1), ``seed`` and the
``width_mult``/``depth_mult``/``image_size``/``subset`` of the shrunken copy they score.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coatnet_nas.errors import CoatnetError
from coatnet_nas.proxies.recipe import TRAINING_OPTIONS
from coatnet_nas.proxies.scores import get_score

__all__ = [
    "SCORE_OPTIONS",
    "SUPERNET",
    "SUPERNET_OPTIONS",
    "TRAIN",
    "ProxySpec",
    "parse_proxies",
    "parse_proxy",
]

TRAIN = "train"
# ``supernet:SUPER.pt[,batches=N,batch_size=B,seed=S]``: a candidate's accuracy with weights
# inherited from a trained supernet (coatnet_nas.supernet.score); the path is the first item.
SUPERNET = "supernet"
SUPERNET_OPTIONS = ("path", "batches", "batch_size", "seed")
_DATA_KEYS = ("image_size", "subset", "val_fraction")
SCORE_OPTIONS = ("batch_size", "batches", "seed", "width_mult", "depth_mult", *_DATA_KEYS)


@dataclass(frozen=True)
class ProxySpec:
    """A parsed proxy: ``name`` (``train`` or a score) and its options as sorted pairs."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def is_training(self) -> bool:
        return self.name == TRAIN

    @property
    def is_supernet(self) -> bool:
        return self.name == SUPERNET

    @property
    def varies_with_seed(self) -> bool:
        """Whether the caller's seed changes the value: False when the proxy pins its own
        ``seed=`` or is a seed-free score (``params``, ``flops``)."""
        if "seed" in dict(self.options):
            return False
        return self.is_training or self.is_supernet or get_score(self.name).seeded

    @property
    def label(self) -> str:
        """Canonical text, e.g. ``train:epochs=1`` (what tables, CSV and studies show)."""
        if self.is_supernet:
            rest = [f"{k}={_fmt(v)}" for k, v in self.options if k != "path"]
            return f"{self.name}:" + ",".join([str(self.get("path")), *rest])
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
        return (*TRAINING_OPTIONS, "seed")
    if name == SUPERNET:
        return SUPERNET_OPTIONS
    get_score(name)  # unknown names raise here
    return SCORE_OPTIONS


def _build(name: str, items: list[str], source: str) -> ProxySpec:
    allowed = _allowed(name)
    options: dict[str, Any] = {}
    if name == SUPERNET:  # the file comes first: supernet:SUPER.pt[,key=value...]
        if not items or "=" in items[0] or not items[0].strip():
            raise CoatnetError(
                f"proxy {source!r}: name the supernet file, e.g. supernet:SUPER.pt "
                "(written by 'coatnet supernet train')."
            )
        options["path"] = items[0].strip()
        items = items[1:]
        if not Path(options["path"]).is_file():  # refused before a search or check starts
            raise CoatnetError(
                f"proxy {source!r}: {options['path']}: no such supernet file ('coatnet supernet "
                "train --out FILE' writes one)."
            )
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


def parse_proxies(text: str, *, param: str = "proxies") -> list[ProxySpec]:
    """``"train:epochs=1,naswot,params"`` -> proxies, in order (see the module docstring).

    An error is about ``param`` (the argument the text came in).
    """
    try:
        return _parse(text)
    except CoatnetError as exc:
        exc.param = exc.param or param
        raise


def _parse(text: str) -> list[ProxySpec]:
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


def parse_proxy(text: str, *, param: str = "proxy") -> ProxySpec:
    """Exactly one proxy, e.g. a proxy check's reference or a search's proxy (``param``: the
    argument the text came in, which errors are about)."""
    proxies = parse_proxies(text, param=param)
    if len(proxies) != 1:
        raise CoatnetError(f"expected one proxy, got {len(proxies)} in {text!r}.", param=param)
    return proxies[0]
