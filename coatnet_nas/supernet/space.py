"""What a supernet contains: every choice of a search space at the proxy's size.

:class:`ElasticSpace` is a search space seen from the supernet: per stage position the block
letters the layout language allows there, the depth range, the width choices per letter (after
the proxy's shrink, rounded exactly as :func:`~coatnet_nas.scaling.scale_spec` rounds them) and
the option choices per letter. It samples proxy-size specs (the sandwich rule's largest,
smallest and random children); :mod:`coatnet_nas.supernet.fit` says why a spec does not fit.

The search layer sits above this one, so a search space is read through the attributes it has
(:class:`SpaceLike`), as :mod:`coatnet_nas.proxies.sample` does.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from coatnet_nas.errors import CoatnetError
from coatnet_nas.limits import ENUMERATE_LAYOUTS
from coatnet_nas.registry import block_type, block_types
from coatnet_nas.scaling import WIDTH_QUANTUM, round_width
from coatnet_nas.spec import ModelSpec, parse_layout

__all__ = ["ELASTIC_LETTERS", "ElasticSpace", "ElasticStage", "SpaceLike", "elastic_space"]

ELASTIC_LETTERS = ("C", "T")  # block types the supernet has elastic modules for


class SpaceLike(Protocol):
    """What :func:`elastic_space` reads of a search space (``SearchSpace`` is one)."""

    name: str
    layouts: Any
    stem_depth: tuple[int, int]
    depths: tuple[tuple[int, int], ...]
    widths: tuple[tuple[int, ...], ...]
    options: dict[str, dict[str, tuple[Any, ...]]]

    def layout_choices(self) -> list[str]: ...

    def layout_count(self) -> int: ...


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ElasticStage(_Strict):
    """One stage position: its letters, proxy-size depth range and width choices per letter."""

    letters: tuple[str, ...]
    depths: tuple[int, int]
    widths: dict[str, tuple[int, ...]]

    def max_width(self, letter: str | None = None) -> int:
        letters = [letter] if letter else self.letters
        return max(max(self.widths[x]) for x in letters)

    def all_widths(self) -> set[int]:
        return {w for x in self.letters for w in self.widths[x]}


class ElasticSpace(_Strict):
    """The supernet's choices at the proxy's size, and the shrink that maps candidates to it."""

    name: str
    layouts: tuple[str, ...]
    stem_depths: tuple[int, ...]
    stem_widths: tuple[int, ...]
    stages: tuple[ElasticStage, ...]
    options: dict[str, dict[str, tuple[Any, ...]]]  # letter -> option -> choices
    image_size: tuple[int, int]
    num_classes: int
    in_chans: int
    width_mult: float = 1.0
    depth_mult: float = 1.0

    # --- sampling -----------------------------------------------------------------------------
    def spec(
        self,
        layout: str,
        depths: list[int],
        widths: list[int],
        stem: tuple[int, int],
        options: dict[str, dict[str, Any]],
    ) -> ModelSpec:
        letters = parse_layout(layout)
        return ModelSpec.model_validate(
            {
                "name": f"{self.name}-subnet",
                "image_size": list(self.image_size),
                "num_classes": self.num_classes,
                "in_chans": self.in_chans,
                "stem": {"depth": stem[0], "width": stem[1]},
                "stages": [
                    {"type": x, "depth": d, "width": w, "options": options[x]}
                    for x, d, w in zip(letters, depths, widths, strict=True)
                ],
            }
        )

    @staticmethod
    def fitting(stage: ElasticStage, letter: str, options: dict[str, Any]) -> tuple[int, ...]:
        """The stage's width choices valid with these options (T: multiples of head_dim)."""
        multiple = block_type(letter).options(**options).width_multiple()
        return tuple(w for w in stage.widths[letter] if w % multiple == 0) or stage.widths[letter]

    def extreme(self, layout: str, largest: bool) -> ModelSpec:
        """The largest (or smallest) spec of ``layout``: every elastic choice at its end."""
        pick = max if largest else min
        letters = parse_layout(layout)
        stages = self.stages[: len(letters)]
        options = {
            x: {k: _extreme(k, v, largest) for k, v in self.options[x].items()}
            for x in set(letters)
        }
        return self.spec(
            layout,
            [s.depths[1] if largest else s.depths[0] for s in stages],
            [pick(self.fitting(s, x, options[x])) for s, x in zip(stages, letters, strict=True)],
            (pick(self.stem_depths), pick(self.stem_widths)),
            options,
        )

    def sample(self, rng: random.Random, layout: str | None = None) -> ModelSpec:
        """A uniform draw of every choice (``layout`` fixed when given)."""
        layout = layout or rng.choice(self.layouts)
        letters = parse_layout(layout)
        stages = self.stages[: len(letters)]
        options = {
            x: {k: rng.choice(v) for k, v in self.options[x].items()}
            for x in dict.fromkeys(letters)
        }
        return self.spec(
            layout,
            [rng.randint(*s.depths) for s in stages],
            [
                rng.choice(self.fitting(s, x, options[x]))
                for s, x in zip(stages, letters, strict=True)
            ],
            (rng.choice(self.stem_depths), rng.choice(self.stem_widths)),
            options,
        )

    def describe(self) -> str:
        widths = "; ".join(
            f"S{i + 1} " + "/".join(f"{x} {','.join(map(str, s.widths[x]))}" for x in s.letters)
            for i, s in enumerate(self.stages)
        )
        return (
            f"{len(self.layouts)} layout(s) ({', '.join(self.layouts[:6])}"
            f"{', ...' if len(self.layouts) > 6 else ''}), widths at the proxy's size {widths}"
        )


def _extreme(name: str, choices: tuple[Any, ...], largest: bool) -> Any:
    """Largest/smallest for size options; a non-size option (pool) keeps its first choice."""
    if name in ("pool",):
        return choices[0]
    if name == "head_dim":  # more heads (a smaller head_dim) is the larger attention
        return (min if largest else max)(choices)
    return (max if largest else min)(choices)


def _scaled_width(width: int, mults: tuple[float, float], multiple: int) -> int:
    """As :func:`~coatnet_nas.scaling.scale_spec` rounds (which is the identity at 1 and 1)."""
    if mults == (1.0, 1.0):
        return width
    return round_width(width * mults[0], math.lcm(WIDTH_QUANTUM, multiple))


def _scaled_depth(depth: int, mult: float) -> int:
    return depth if mult == 1.0 else max(1, round(depth * mult))


def elastic_space(
    space: SpaceLike,
    *,
    image_size: tuple[int, int],
    num_classes: int,
    in_chans: int,
    width_mult: float = 1.0,
    depth_mult: float = 1.0,
) -> ElasticSpace:
    """The supernet's view of ``space`` shrunk by ``width_mult``/``depth_mult``, at ``image_size``.

    Raises :class:`CoatnetError` for what no supernet here holds: block types other than C/T,
    a conv stem of several depths is fine but layouts must be listable (at most
    :data:`~coatnet_nas.limits.ENUMERATE_LAYOUTS`).
    """
    if space.layout_count() > ENUMERATE_LAYOUTS:
        raise CoatnetError(
            f"space {space.name}: {space.layout_count():,} layouts are too many for one supernet "
            f"(at most {ENUMERATE_LAYOUTS:,}); restrict the layout pattern.",
            param="space_path",
        )
    layouts = tuple(space.layout_choices())
    parsed = [parse_layout(x) for x in layouts]
    others = sorted({x for p in parsed for x in p} - set(ELASTIC_LETTERS))
    if others:
        raise CoatnetError(
            f"space {space.name}: block type(s) {', '.join(others)} have no elastic supernet "
            f"module; a supernet holds {' and '.join(ELASTIC_LETTERS)} stages.",
            param="space_path",
        )
    options: dict[str, dict[str, tuple[Any, ...]]] = {}
    multiples: dict[str, set[int]] = {}
    for letter in ELASTIC_LETTERS:
        bt = block_type(letter)
        given = space.options.get(bt.key, {})
        defaults = bt.options()
        choices = {k: tuple(given.get(k, (getattr(defaults, k),))) for k in bt.options.model_fields}
        options[letter] = choices
        combos = itertools.product(*choices.values())
        multiples[letter] = {
            bt.options(**dict(zip(choices, c, strict=True))).width_multiple() for c in combos
        }
    n = max(len(p) for p in parsed)
    mults = (width_mult, depth_mult)
    stages = []
    for i in range(n):
        letters = tuple(x for x in block_types() if any(len(p) > i and p[i] == x for p in parsed))
        lo, hi = space.depths[i]
        widths = {}
        for x in letters:
            scaled = {_scaled_width(w, mults, m) for w in space.widths[i + 1] for m in multiples[x]}
            widths[x] = tuple(sorted(scaled))
        depths = (_scaled_depth(lo, depth_mult), _scaled_depth(hi, depth_mult))
        stages.append(ElasticStage(letters=letters, depths=depths, widths=widths))
    stem_lo, stem_hi = space.stem_depth
    return ElasticSpace(
        name=space.name,
        layouts=layouts,
        stem_depths=tuple(range(stem_lo, stem_hi + 1)),
        stem_widths=tuple(sorted({_scaled_width(w, mults, 1) for w in space.widths[0]})),
        stages=tuple(stages),
        options={x: v for x, v in options.items() if any(x in s.letters for s in stages)},
        image_size=tuple(image_size),
        num_classes=num_classes,
        in_chans=in_chans,
        width_mult=width_mult,
        depth_mult=depth_mult,
    )
