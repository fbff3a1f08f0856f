"""Search spaces as YAML specs: which layouts, depths, widths and block options a search may pick,
the target the budget applies to, and the proxy recipe that scores candidates.

A space turns an Optuna trial into a :class:`~coatnet_nas.spec.ModelSpec` (``sample``). Parameter
names are stable strings (``layout``, ``depth_s1``, ``width_s0``, ``mbconv.expand_ratio``) so that
studies stay comparable and plots readable; layouts are stored as strings like ``C-C-T-T``.
(A little over ~300 lines: the schema and its cross-checks are read together.)
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from coatnet_nas.errors import CoatnetError, SpecError
from coatnet_nas.presets import default_space_path
from coatnet_nas.proxies.recipe import ProxyRecipe
from coatnet_nas.registry import BlockOptions, BlockType, block_type, block_types
from coatnet_nas.spec import (
    ModelSpec,
    format_problems,
    parse_layout,
    problems_from_validation,
    read_yaml,
)
from coatnet_nas.units import parse_flops, parse_params

DEFAULT_SPACE = default_space_path()  # bundled package data, found wherever the package is


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LayoutPattern(_Strict):
    """Every string of registered letters of the given lengths that fully matches ``pattern``."""

    pattern: str = Field(description="regular expression over stage letters, e.g. 'C*T*'")
    lengths: tuple[int, ...] = Field(description="numbers of stages, e.g. [4]")

    @field_validator("lengths", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) else value

    def expand(self) -> list[str]:
        try:
            regex = re.compile(self.pattern.replace("-", ""))
        except re.error as exc:
            raise ValueError(
                f"pattern {self.pattern!r} is not a valid regular expression: {exc}"
            ) from None
        letters = sorted(block_types())
        rank = {letter: i for i, letter in enumerate(block_types())}  # registration order: C, T
        out = [
            combo
            for n in self.lengths
            for combo in itertools.product(letters, repeat=n)
            if regex.fullmatch("".join(combo))
        ]
        # Shorter first, then conv-heavy first (a stored study's choice order must stay put).
        out.sort(key=lambda c: (len(c), sum(rank[x] for x in c), c))
        return ["-".join(c) for c in out]


class Target(_Strict):
    """The model the budget is about (the search's answer is built at this size)."""

    image_size: int = Field(224, ge=8)
    num_classes: int = Field(1000, ge=1)
    in_chans: int = Field(3, ge=1)
    drop_path_rate: float = Field(0.0, ge=0, lt=1)


class Budget(_Strict):
    flops: int | None = None
    params: int | None = None

    @field_validator("flops", mode="before")
    @classmethod
    def _flops(cls, value: Any) -> Any:
        return None if value is None else parse_flops(value, what="budget.flops")

    @field_validator("params", mode="before")
    @classmethod
    def _params(cls, value: Any) -> Any:
        return None if value is None else parse_params(value, what="budget.params")


class SearchSpace(_Strict):
    name: str = "default"
    layouts: tuple[str, ...] | LayoutPattern
    stem_depth: tuple[int, int] = (2, 2)
    depths: tuple[tuple[int, int], ...] = Field(description="[low, high] per stage after the stem")
    widths: tuple[tuple[int, ...], ...] = Field(description="choices per position, stem first")
    options: dict[str, dict[str, tuple[Any, ...]]] = Field(
        default_factory=dict, description="choices per block option, keyed by block key"
    )
    target: Target = Target()
    budget: Budget = Budget()
    proxy: ProxyRecipe = ProxyRecipe()

    @field_validator("stem_depth", mode="before")
    @classmethod
    def _range(cls, value: Any) -> Any:
        return (value, value) if isinstance(value, int) else value

    @field_validator("depths", mode="before")
    @classmethod
    def _ranges(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [(v, v) if isinstance(v, int) else v for v in value]
        return value

    @field_validator("widths", mode="before")
    @classmethod
    def _choices(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [[v] if isinstance(v, int) else v for v in value]
        return value

    @model_validator(mode="before")
    @classmethod
    def _collect_options(cls, data: Any) -> Any:
        # Block option choices live under each block type's key (``mbconv:``, ``transformer:``).
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        options = dict(data.pop("options", {}) or {})
        for bt in block_types().values():
            if bt.key in data:
                raw = data.pop(bt.key) or {}
                if not isinstance(raw, Mapping):
                    raise ValueError(f"{bt.key}: must map option names to lists of choices")
                options[bt.key] = {k: (v if isinstance(v, list) else [v]) for k, v in raw.items()}
        data["options"] = options
        return data

    @model_validator(mode="after")
    def _consistent(self) -> SearchSpace:
        layouts = [parse_layout(x) for x in self.layout_choices()]
        _check_shape(self, layouts)
        _check_options(self.options)
        _check_image_sizes(self, layouts)
        _check_widths(self, layouts)
        return self

    # --- use ---------------------------------------------------------------------------------
    def with_proxy(self, **changes: Any) -> SearchSpace:
        """This space with proxy-recipe fields overridden (``None`` values are ignored).

        Raises :class:`CoatnetError` naming the override when the new recipe is invalid.
        """
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        given = ", ".join(f"{k}={v}" for k, v in changes.items())
        recipe = self.proxy.evolve(what=f"proxy override {given}", **changes)
        return self.model_copy(update={"proxy": recipe})

    def layout_choices(self) -> list[str]:
        if isinstance(self.layouts, LayoutPattern):
            return self.layouts.expand()
        return ["-".join(parse_layout(x)) for x in self.layouts]

    def sample(self, trial: Any) -> ModelSpec:
        """Draw a spec at the target size with Optuna's ``suggest_*`` API."""
        layouts = self.layout_choices()
        layout = trial.suggest_categorical("layout", layouts) if len(layouts) > 1 else layouts[0]
        letters = parse_layout(layout)

        def pick_int(name: str, lo: int, hi: int) -> int:
            return trial.suggest_int(name, lo, hi) if hi > lo else lo

        def pick(name: str, choices: tuple[Any, ...]) -> Any:
            return (
                trial.suggest_categorical(name, list(choices)) if len(choices) > 1 else choices[0]
            )

        options: dict[str, dict[str, Any]] = {}
        for letter in dict.fromkeys(letters):
            key = block_type(letter).key
            choices = self.options.get(key, {})
            options[letter] = {name: pick(f"{key}.{name}", vals) for name, vals in choices.items()}
        stages = [
            {
                "type": letter,
                "depth": pick_int(f"depth_s{i + 1}", *self.depths[i]),
                "width": pick(f"width_s{i + 1}", self.widths[i + 1]),
                "options": options[letter],
            }
            for i, letter in enumerate(letters)
        ]
        return ModelSpec.model_validate(
            {
                "name": f"{self.name}-trial",
                "image_size": self.target.image_size,
                "num_classes": self.target.num_classes,
                "in_chans": self.target.in_chans,
                "drop_path_rate": self.target.drop_path_rate,
                "stem": {
                    "depth": pick_int("depth_s0", *self.stem_depth),
                    "width": pick("width_s0", self.widths[0]),
                },
                "stages": stages,
            }
        )


def load_space(path: str | Path | None = None) -> SearchSpace:
    """Load a search-space YAML (default: the bundled ``specs/search/default.yaml``)."""
    path = Path(path) if path is not None else DEFAULT_SPACE
    data = read_yaml(path, what="search space")
    if not isinstance(data, Mapping):
        raise SpecError(
            f"{path}: a search space must be a YAML mapping, got {type(data).__name__}."
        )
    return space_from_dict(data, str(path))


def space_from_dict(data: Mapping[str, Any], source: str = "<space>") -> SearchSpace:
    try:
        return SearchSpace.model_validate(data)
    except ValidationError as exc:
        problems = problems_from_validation(exc)
        raise SpecError(format_problems(source, problems, what="search space")) from None
    except CoatnetError as exc:  # a budget string inside the space
        raise SpecError(f"{source}: {exc}") from None


# --- consistency checks (each raises ValueError, which pydantic reports with the file name) ---


def _check_shape(space: SearchSpace, layouts: list[list[str]]) -> None:
    """Layouts, depth ranges and width lists agree on the number of stages."""
    if not layouts:
        raise ValueError("layouts: no layout matches; list layouts or loosen the pattern")
    n = len(space.depths)
    bad = ["-".join(x) for x in layouts if len(x) != n]
    if bad:
        raise ValueError(
            f"layouts {bad} do not have {n} stages; depths gives one [low, high] per stage"
        )
    if len(space.widths) != n + 1:
        raise ValueError(
            f"widths: needs {n + 1} choice lists (stem first), got {len(space.widths)}"
        )
    for i, (lo, hi) in enumerate((space.stem_depth, *space.depths)):
        if not 1 <= lo <= hi:
            raise ValueError(f"depths[{i}]: need 1 <= low <= high, got [{lo}, {hi}]")
    if any(min(w) < 1 for w in space.widths):
        raise ValueError("widths: every choice must be a positive integer")


def _check_options(options: dict[str, dict[str, tuple[Any, ...]]]) -> None:
    """Option choices are keyed by a registered block key, and each is valid on its own."""
    keys = {bt.key: bt for bt in block_types().values()}
    for key, choices in options.items():
        if key not in keys:
            raise ValueError(f"unknown block options {key!r}; allowed: {', '.join(keys)}")
        fields = keys[key].options.model_fields
        for name, values in choices.items():
            if name not in fields:
                raise ValueError(f"{key}.{name}: unknown option; allowed: {', '.join(fields)}")
            if not values:
                raise ValueError(f"{key}.{name}: give at least one choice")
            for v in values:
                keys[key].options.model_validate({name: v})


def _check_image_sizes(space: SearchSpace, layouts: list[list[str]]) -> None:
    """The target and proxy resolutions survive every layout's downsampling."""
    for where, size in (
        ("target.image_size", space.target.image_size),
        ("proxy.image_size", space.proxy.image_size),
    ):
        for x in layouts:
            stride = 2 ** (len(x) + 1)
            if size % stride:
                raise ValueError(
                    f"{where}: {size} cannot be divided by layout {'-'.join(x)} (stem and "
                    f"{len(x)} stages need a multiple of {stride})"
                )


def _check_widths(space: SearchSpace, layouts: list[list[str]]) -> None:
    """Every width a stage can draw suits every block type that position can be.

    The block type's options decide (:meth:`BlockOptions.width_problem`), for every option
    combination the space can sample, so a new block type brings its own width rule.
    """
    for i in range(len(space.depths)):
        for letter in dict.fromkeys(x[i] for x in layouts):
            bt = block_type(letter)
            for opts in _option_combinations(bt, space.options.get(bt.key, {})):
                for width in space.widths[i + 1]:
                    problem = opts.width_problem(width)
                    if problem:
                        given = opts.model_dump(exclude_defaults=True)
                        where = ", ".join(f"{k}={v}" for k, v in given.items())
                        raise ValueError(
                            f"widths[{i + 1}]: choice {width} does not suit stage {i + 1} as a "
                            f"{letter} stage ({bt.key} {where or 'default options'}): {problem}"
                        )


def _option_combinations(bt: BlockType, choices: dict[str, tuple[Any, ...]]) -> list[BlockOptions]:
    """Every option set a trial can draw for ``bt`` (unlisted options at their defaults)."""
    names = list(choices)
    return [
        bt.options.model_validate(dict(zip(names, combo, strict=True)))
        for combo in itertools.product(*(choices[name] for name in names))
    ]
