"""Search spaces as YAML specs: which layouts, depths, widths and block options a search may pick,
the target the budget applies to, and the proxy recipe that scores candidates.

A space turns an Optuna trial into a :class:`~coatnet_nas.spec.ModelSpec` (``sample``). Parameter
names are stable strings (``layout``, ``depth_s1``, ``width_s0``, ``mbconv.expand_ratio``) so that
studies stay comparable and plots readable; layouts are stored as strings like ``C-C-T-T``.

A layout pattern is counted, never listed, unless it is small (:data:`ENUMERATE_LAYOUTS`): a
small space samples ``layout`` as a categorical of strings (stored studies stay valid); a large
one samples ``layout_index`` in ``[0, count)`` and unranks it (uniform over layouts). The checks
that make problems located and bounded live in :mod:`coatnet_nas.search.space_checks`.
(Over ~300 lines: the schema, its YAML shorthands and layout sampling are read together.)
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from coatnet_nas.errors import CoatnetError, SpecError
from coatnet_nas.limits import ENUMERATE_LAYOUTS, count_text, short_repr
from coatnet_nas.presets import default_space_path
from coatnet_nas.proxies.recipe import ProxyRecipe
from coatnet_nas.registry import block_type, block_types
from coatnet_nas.search import space_checks
from coatnet_nas.search.pattern import LayoutLanguage, PatternError
from coatnet_nas.search.rungs import Rung
from coatnet_nas.spec import (
    ModelSpec,
    SpecProblems,
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
    """Every string of registered letters of the given lengths that fully matches ``pattern``.

    The grammar is :mod:`coatnet_nas.search.pattern`'s (letters, classes, groups, ``|`` and
    quantifiers), not all of Python's ``re``.
    """

    pattern: str = Field(description="regular expression over stage letters, e.g. 'C*T*'")
    lengths: tuple[int, ...] = Field(description="numbers of stages, e.g. [4]")

    @field_validator("lengths", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        value = [value] if isinstance(value, int) else value
        problems = space_checks.length_problems(value) if isinstance(value, list) else []
        if problems:
            raise SpecProblems(problems)
        return value

    def language(self) -> LayoutLanguage:
        """The counted language (cached per pattern, lengths and registered letters)."""
        try:
            return _language(self.pattern, self.lengths, tuple(block_types()))
        except PatternError as exc:
            where = ("layouts", "pattern")
            raise SpecProblems([(where, f"{short_repr(self.pattern)}: {exc}")]) from None

    def expand(self) -> list[str]:
        """Every layout, in the stored-study order (refused above :data:`ENUMERATE_LAYOUTS`)."""
        lang = self.language()
        if lang.count > ENUMERATE_LAYOUTS:
            raise SpecError(
                f"layouts: pattern {short_repr(self.pattern)} has {count_text(lang.count)} "
                f"layouts, too many to list (limit {ENUMERATE_LAYOUTS:,}); it is sampled by index."
            )
        return lang.layouts()


@lru_cache(maxsize=64)
def _language(pattern: str, lengths: tuple[int, ...], letters: tuple[str, ...]) -> LayoutLanguage:
    return LayoutLanguage(pattern, lengths, letters)


class _ListedLayouts:
    """An explicit layout list seen through the same interface as a pattern's language."""

    def __init__(self, layouts: list[list[str]]):
        self.layouts = layouts
        self.count = len(layouts)
        self.by_length: dict[int, int] = {}
        for x in layouts:
            self.by_length[len(x)] = self.by_length.get(len(x), 0) + 1

    def letters_at(self, n: int, position: int) -> list[str]:
        return list(dict.fromkeys(x[position] for x in self.layouts if len(x) == n))


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
    """What a search may pick, the target the budget is about, and how candidates are scored.

    Longer than our ~120-line class guide: a Pydantic schema whose before-validators accept the
    YAML shorthands (ranges, single choices, block keys) next to the fields they shape; the
    cross-checks themselves live in ``space_checks``.
    """

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
    rungs: tuple[Rung, ...] = Field(
        (), description="rungs above the proxy (rung 0): top candidates re-scored at more fidelity"
    )

    @field_validator("layouts", mode="before")
    @classmethod
    def _layouts(cls, value: Any) -> Any:
        if isinstance(value, (LayoutPattern, tuple)):
            return value
        if isinstance(value, Mapping):
            try:
                return LayoutPattern.model_validate(value)
            except ValidationError as exc:
                found = problems_from_validation(exc)
                raise SpecProblems([(("layouts", *loc), msg) for loc, msg in found]) from None
        if not isinstance(value, list) or not value:
            raise ValueError(
                "must be a list of layouts like ['C-C-T-T', 'C-T-T-T'] or a pattern like "
                "{pattern: 'C+T*', lengths: [4]}"
            )
        problems = []
        for i, x in enumerate(value):
            found: list = []
            letters = parse_layout(x, found)
            problems += [(("layouts", i), msg) for _, msg in found]
            if len(letters) > space_checks.MAX_STAGES:
                problems.append(
                    (
                        ("layouts", i),
                        f"{len(letters)} stages; a spec has at most {space_checks.MAX_STAGES}",
                    )
                )
        if problems:
            raise SpecProblems(problems)
        return value

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
        options = data.pop("options", {}) or {}
        if not isinstance(options, Mapping):
            raise SpecProblems([(("options",), f"must be a mapping, got {short_repr(options)}")])
        options = dict(options)
        for bt in block_types().values():
            if bt.key in data:
                raw = data.pop(bt.key) or {}
                if not isinstance(raw, Mapping):
                    raise SpecProblems(
                        [
                            (
                                (bt.key,),
                                f"must map option names to lists of choices, got {short_repr(raw)}",
                            )
                        ]
                    )
                options[bt.key] = {k: (v if isinstance(v, list) else [v]) for k, v in raw.items()}
        data["options"] = options
        return data

    @model_validator(mode="after")
    def _consistent(self) -> SearchSpace:
        problems = space_checks.space_problems(self, self._layouts_view())
        for i in range(len(self.rungs)):
            try:
                self.rung_recipe(i + 1)
            except CoatnetError as exc:
                problems.append((("rungs", i, "proxy"), str(exc)))
        if problems:
            raise SpecProblems(problems)
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

    def rung_recipe(self, rung: int) -> ProxyRecipe:
        """The proxy recipe of ``rung`` (0: ``proxy``; above: ``proxy`` with the rung's overrides).

        A rung cannot change the data set (one per study). Raises :class:`CoatnetError`.
        """
        if rung == 0:
            return self.proxy
        changes = dict(self.rungs[rung - 1].proxy)
        fixed = sorted(k for k in changes if k in ("dataset", "data_dir"))
        if fixed:
            raise CoatnetError(
                f"{', '.join(fixed)} cannot change between rungs (one data set per search); "
                "set it in proxy:."
            )
        return self.proxy.evolve(what=f"rung {rung} proxy", **changes)

    def with_rungs(self, count: int) -> SearchSpace:
        """This space with its first ``count`` rungs (1: the proxy alone, no promotion)."""
        if count < 1:
            raise CoatnetError(
                f"rungs must be >= 1 (1: the proxy alone), got {count}.", param="rungs"
            )
        return self.model_copy(update={"rungs": self.rungs[: count - 1]})

    def _layouts_view(self) -> LayoutLanguage | _ListedLayouts:
        if isinstance(self.layouts, LayoutPattern):
            return self.layouts.language()
        return _ListedLayouts([parse_layout(x) for x in self.layouts])

    def layout_count(self) -> int:
        """How many layouts the space holds (counted, not listed)."""
        return self._layouts_view().count

    def describe_layouts(self) -> str:
        """``4 layouts`` / ``2^40 layouts (pattern '[CT]*')`` for messages and reports."""
        n = self.layout_count()
        what = (
            f" (pattern {self.layouts.pattern!r})"
            if isinstance(self.layouts, LayoutPattern)
            else ""
        )
        return f"{count_text(n)} layout{'s' if n != 1 else ''}{what}"

    def layout_choices(self) -> list[str]:
        """Every layout as ``C-C-T-T``; a pattern above :data:`ENUMERATE_LAYOUTS` is refused."""
        if isinstance(self.layouts, LayoutPattern):
            return self.layouts.expand()
        return ["-".join(parse_layout(x)) for x in self.layouts]

    def sample(self, trial: Any) -> ModelSpec:
        """Draw a spec at the target size with Optuna's ``suggest_*`` API."""
        view = self._layouts_view()
        if isinstance(view, LayoutLanguage) and view.count > ENUMERATE_LAYOUTS:
            layout = view.unrank(trial.suggest_int("layout_index", 0, view.count - 1))
        else:
            layouts = self.layout_choices()
            many = len(layouts) > 1
            layout = trial.suggest_categorical("layout", layouts) if many else layouts[0]
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
    """Validate a parsed search space; every problem located, in one bounded message."""
    fields = {
        "target": tuple(Target.model_fields),
        "budget": tuple(Budget.model_fields),
        "layouts": tuple(LayoutPattern.model_fields),
    }
    problems = space_checks.key_problems(data, tuple(SearchSpace.model_fields), fields)
    try:
        space = SearchSpace.model_validate(data)
    except ValidationError as exc:
        reported = {loc[:2] for loc, _ in problems}
        problems += [p for p in problems_from_validation(exc) if p[0][:2] not in reported]
    except CoatnetError as exc:  # a budget string inside the space
        raise SpecError(f"{source}: {exc}", param=exc.param) from None
    else:
        if not problems:
            return space
    raise SpecError(format_problems(source, problems, what="search space"))
