"""The block configurations ("kinds") a spec or a search space produces, and their real modules.

A kind is everything that fixes a block's cost: its role (stem, the first/downsampling block of
a stage, a repeated block, the head), its type, widths, input grid and options. Two specs that
share a kind run the same module shapes, so one measurement serves both. Modules are always the
builder's own (stage builders from the registry, the stem, the classifier head), never copies.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from coatnet_nas.errors import CoatnetError
from coatnet_nas.registry import block_type
from coatnet_nas.spec import ModelSpec, StageSpec

__all__ = [
    "BlockKind",
    "SpaceLike",
    "StageKinds",
    "kinds_of_specs",
    "sample_specs",
    "space_kinds",
    "spec_kinds",
]

ROLES = ("stem", "first", "repeat", "head")
Shrink = Callable[[ModelSpec], ModelSpec]


@dataclass(frozen=True)
class BlockKind:
    """One block configuration; ``size`` is the grid the block reads (H, W)."""

    role: str
    type: str
    in_ch: int
    out_ch: int
    size: tuple[int, int]
    options: tuple[tuple[str, Any], ...] = ()
    key: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        opts = ",".join(f"{k}={v}" for k, v in self.options)
        h, w = self.size
        key = f"{self.role}:{self.type}:{self.in_ch}->{self.out_ch}@{h}x{w}:{opts}"
        object.__setattr__(self, "key", key)

    @property
    def group(self) -> str:
        """Kinds that share one regressor: same role and type (``first:C``, ``stem:conv``)."""
        return f"{self.role}:{self.type}"

    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "type": self.type,
            "in_ch": self.in_ch,
            "out_ch": self.out_ch,
            "size": list(self.size),
            "options": dict(self.options),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BlockKind:
        return cls(
            data["role"],
            data["type"],
            int(data["in_ch"]),
            int(data["out_ch"]),
            (int(data["size"][0]), int(data["size"][1])),
            tuple(sorted(data.get("options", {}).items())),
        )


@dataclass(frozen=True)
class StageKinds:
    """A stage of a spec (``S0`` = stem, ``S1``..., ``head``) as kinds with their counts."""

    name: str
    type: str
    kinds: tuple[tuple[BlockKind, int], ...]


def _options(stage: StageSpec) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(stage.options.model_dump().items()))


def spec_kinds(spec: ModelSpec) -> list[StageKinds]:
    """The kinds every stage of ``spec`` runs, at the spec's image size (no module built)."""
    stem = spec.stem
    stem_opts = (
        ("depth", stem.depth),
        ("patch_size", stem.patch_size if stem.kind == "patch" else 0),
    )
    rows = [
        StageKinds(
            "S0",
            "stem",
            (
                (
                    BlockKind(
                        "stem", stem.kind, spec.in_chans, stem.width, spec.image_size, stem_opts
                    ),
                    1,
                ),
            ),
        )
    ]
    sizes = spec.resolutions()
    in_ch = stem.width
    for i, stage in enumerate(spec.stages):
        opts = _options(stage)
        kinds = [(BlockKind("first", stage.type, in_ch, stage.width, sizes[i], opts), 1)]
        if stage.depth > 1:
            repeat = BlockKind("repeat", stage.type, stage.width, stage.width, sizes[i + 1], opts)
            kinds.append((repeat, stage.depth - 1))
        rows.append(StageKinds(f"S{i + 1}", stage.type, tuple(kinds)))
        in_ch = stage.width
    head = BlockKind("head", "head", in_ch, spec.num_classes, sizes[-1])
    rows.append(StageKinds("head", "head", ((head, 1),)))
    return rows


def kinds_of_specs(specs: Iterable[ModelSpec]) -> list[BlockKind]:
    """Every distinct kind the specs use, in first-seen order."""
    seen: dict[str, BlockKind] = {}
    for spec in specs:
        for row in spec_kinds(spec):
            for kind, _ in row.kinds:
                seen.setdefault(kind.key, kind)
    return list(seen.values())


class _Target(Protocol):
    image_size: int
    num_classes: int
    in_chans: int


class SpaceLike(Protocol):
    """What the table needs of a search space (``coatnet_nas.search.SearchSpace`` is one).

    A protocol, not an import: the search uses latency, so latency must not depend on search.
    """

    name: str
    stem_depth: tuple[int, int]
    depths: tuple[tuple[int, int], ...]
    widths: tuple[tuple[int, ...], ...]
    options: dict[str, dict[str, tuple[Any, ...]]]
    target: _Target

    def layout_choices(self) -> list[str]: ...

    def sample(self, trial: Any) -> ModelSpec: ...


def _option_sets(space: SpaceLike, letter: str) -> list[dict[str, Any]]:
    choices = space.options.get(block_type(letter).key, {})
    names = list(choices)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*choices.values())]


def space_kinds(
    space: SpaceLike, image_size: int | None = None, shrink: Shrink | None = None
) -> list[BlockKind]:
    """Every kind a spec drawn from ``space`` (at ``image_size``, after ``shrink``) can run.

    Each stage's kinds depend only on its letter, options, own width, the width before it and
    its grid, so they are enumerated position by position: for every layout, position, previous
    width, width and option set, one small spec is made (through the same validation and the
    same ``shrink`` as a real sample, so rounding rules are never re-implemented here) and its
    kinds at that position collected.
    """
    size = image_size or space.target.image_size
    found: dict[str, BlockKind] = {}

    def collect(spec: ModelSpec, names: Sequence[str]) -> None:
        spec = shrink(spec) if shrink else spec
        for row in spec_kinds(spec):
            if row.name in names:
                for kind, _ in row.kinds:
                    found.setdefault(kind.key, kind)

    for layout in space.layout_choices():
        letters = layout.split("-")
        base_options = {x: _option_sets(space, x)[0] for x in letters}

        def make(
            stem_depth: int,
            widths: list[int],
            depths: list[int],
            options: dict,
            letters: list[str] = letters,
        ) -> ModelSpec:
            return ModelSpec.model_validate(
                {
                    "name": "latency-kind",
                    "image_size": size,
                    "num_classes": space.target.num_classes,
                    "in_chans": space.target.in_chans,
                    "stem": {"depth": stem_depth, "width": widths[0]},
                    "stages": [
                        {"type": x, "depth": d, "width": w, "options": options[x]}
                        for x, d, w in zip(letters, depths, widths[1:], strict=True)
                    ],
                }
            )

        first_widths = [choices[0] for choices in space.widths]
        low_depths = [lo for lo, _ in space.depths]
        for stem_depth in range(space.stem_depth[0], space.stem_depth[1] + 1):
            for w in space.widths[0]:
                collect(make(stem_depth, [w, *first_widths[1:]], low_depths, base_options), ["S0"])
        for last in space.widths[len(letters)]:
            spec = make(space.stem_depth[0], [*first_widths[:-1], last], low_depths, base_options)
            collect(spec, ["head"])
        for i, letter in enumerate(letters):
            depths = list(low_depths)
            depths[i] = min(2, space.depths[i][1])  # a repeated block exists when allowed
            for prev, width, opts in itertools.product(
                space.widths[i], space.widths[i + 1], _option_sets(space, letter)
            ):
                widths = list(first_widths)
                widths[i], widths[i + 1] = prev, width
                collect(
                    make(space.stem_depth[0], widths, depths, {**base_options, letter: opts}),
                    [f"S{i + 1}"],
                )
    return list(found.values())


class _SeededTrial:
    """Uniform, seeded answers to the two ``suggest_*`` calls ``SearchSpace.sample`` makes."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def suggest_int(self, name: str, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self.rng.choice(list(choices))


def sample_specs(
    space: SpaceLike,
    n: int,
    seed: int,
    image_size: int | None = None,
    shrink: Shrink | None = None,
) -> list[ModelSpec]:
    """``n`` distinct specs drawn uniformly from ``space`` (seeded), at ``image_size``."""
    if n < 0:
        raise CoatnetError(f"n must be >= 0, got {n}.", param="n")
    trial, out, seen = _SeededTrial(seed), [], set()
    for _ in range(100 * n + 100):
        if len(out) == n:
            break
        spec = space.sample(trial)
        if image_size is not None:
            spec = spec.with_image_size(image_size)
        spec = shrink(spec) if shrink else spec
        key = repr(spec.to_dict())
        if key not in seen:
            seen.add(key)
            out.append(spec)
    return out
