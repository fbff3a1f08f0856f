"""A search space's problems in the user's words: located (``depths[2]``, ``mbconv.expand_ratio``,
``layouts.lengths[0]``), did-you-mean for unknown keys, bounded, and against the spec's own limits.

Every check here returns ``(location, message)`` pairs, never raises, so one load reports every
problem at once (as a spec does). The limits a sampled model must meet (at most 8 stages, depth <=
256 per stage, widths <= 16384) are read from the spec models, so a range the spec would refuse
is rejected when the space is loaded, not discovered as a failed trial hours into a search.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import ValidationError

from coatnet_nas.limits import MAX_OPTION_COMBINATIONS, count_text, field_bounds, listed, short_repr
from coatnet_nas.proxies.recipe import ProxyRecipe
from coatnet_nas.registry import BlockOptions, BlockType, block_types
from coatnet_nas.spec import ModelSpec, StageSpec, StemSpec
from coatnet_nas.spec.problems import Loc, problems_from_validation, unknown_key
from coatnet_nas.train.recipe import TrainRecipe

SearchSpace = Any  # coatnet_nas.search.space.SearchSpace (not imported: space imports this)

Problems = list[tuple[Loc, str]]

MAX_STAGES: int = field_bounds(ModelSpec, "stages")["max_length"]
STAGE_DEPTH: int = field_bounds(StageSpec, "depth")["le"]
STEM_DEPTH: int = field_bounds(StemSpec, "depth")["le"]
STAGE_WIDTH: int = field_bounds(StageSpec, "width")["le"]
STEM_WIDTH: int = field_bounds(StemSpec, "width")["le"]
MAX_IN_CHANS: int = field_bounds(ModelSpec, "in_chans")["le"]


class Layouts(Protocol):
    """What the checks need of a space's layouts (a pattern's language or an explicit list)."""

    count: int
    by_length: dict[int, int]

    def letters_at(self, n: int, position: int) -> list[str]: ...


# --- keys, before validation -------------------------------------------------------------------


def key_problems(
    data: Mapping[str, Any], top_keys: tuple[str, ...], fields: dict[str, tuple[str, ...]]
) -> Problems:
    """Unknown keys anywhere a space has fixed keys, each with a did-you-mean.

    ``fields`` gives the keys of ``target``, ``budget`` and a ``layouts`` pattern mapping.
    """
    bts = {bt.key: bt for bt in block_types().values()}
    allowed = (*top_keys, *bts)
    problems: Problems = [((k,), unknown_key(k, allowed)) for k in data if k not in allowed]
    nested: dict[str, tuple[str, ...]] = {
        "target": fields["target"],
        "budget": fields["budget"],
        "proxy": (*ProxyRecipe.model_fields, *TrainRecipe.model_fields),
        "options": tuple(bts),
        **{key: tuple(bt.options.model_fields) for key, bt in bts.items()},
    }
    if isinstance(data.get("layouts"), Mapping):
        nested["layouts"] = fields["layouts"]
    for key, keys in nested.items():
        value = data.get(key)
        if isinstance(value, Mapping):
            problems += [((key, k), unknown_key(k, keys)) for k in value if k not in keys]
    options = data.get("options")
    if isinstance(options, Mapping):
        for key, value in options.items():
            if key in bts and isinstance(value, Mapping):
                fields = tuple(bts[key].options.model_fields)
                problems += [((key, k), unknown_key(k, fields)) for k in value if k not in fields]
    return problems


def length_problems(lengths: Any) -> Problems:
    """``layouts.lengths``: each a stage count a spec can have (1..8)."""
    items = lengths if isinstance(lengths, (list, tuple)) else [lengths]
    return [
        (
            ("lengths", i),
            f"must be a whole number of stages from 1 to {MAX_STAGES}, got {short_repr(n)}",
        )
        for i, n in enumerate(items)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_STAGES
    ]


# --- the whole space, after field validation ---------------------------------------------------


def space_problems(space: SearchSpace, layouts: Layouts) -> Problems:
    problems = _shape(space, layouts)
    problems += _ranges(space)
    options = _options(space.options)
    problems += options
    if not problems:  # width and size checks assume a consistent shape and valid options
        problems += _image_sizes(space, layouts)
        problems += _widths(space, layouts)
    return problems


def _shape(space: SearchSpace, layouts: Layouts) -> Problems:
    """Layouts, depth ranges and width lists agree on the number of stages (and the spec's max)."""
    if layouts.count == 0:
        return [(("layouts",), "no layout matches; list layouts or loosen the pattern")]
    n = len(space.depths)
    problems: Problems = []
    if not 1 <= n <= MAX_STAGES:
        problems.append(
            (("depths",), f"needs one [low, high] per stage, 1 to {MAX_STAGES} stages; got {n}")
        )
    wrong = {m: c for m, c in layouts.by_length.items() if c and m != n}
    if wrong:
        have = listed(f"{count_text(c)} with {m} stages" for m, c in sorted(wrong.items()))
        problems.append(
            (
                ("layouts",),
                f"layouts must have {n} stages (depths gives one [low, high] per stage); "
                f"got {have}",
            )
        )
    if len(space.widths) != n + 1:
        problems.append(
            (("widths",), f"needs {n + 1} choice lists (stem first), got {len(space.widths)}")
        )
    return problems


def _ranges(space: SearchSpace) -> Problems:
    """Depth ranges and width choices within what a spec accepts."""
    problems: Problems = []
    ranges = [(("stem_depth",), space.stem_depth, STEM_DEPTH)]
    ranges += [(("depths", i), r, STAGE_DEPTH) for i, r in enumerate(space.depths)]
    for loc, (lo, hi), top in ranges:
        if not 1 <= lo <= hi <= top:
            problems.append((loc, f"need 1 <= low <= high <= {top}, got [{lo}, {hi}]"))
    for i, choices in enumerate(space.widths):
        top = STEM_WIDTH if i == 0 else STAGE_WIDTH
        if not choices:
            problems.append((("widths", i), "give at least one width"))
        elif not all(1 <= w <= top for w in choices):
            bad = listed(w for w in choices if not 1 <= w <= top)
            problems.append((("widths", i), f"every choice must be from 1 to {top}, got {bad}"))
    if space.target.in_chans > MAX_IN_CHANS:
        problems.append(
            (("target", "in_chans"), f"at most {MAX_IN_CHANS}, got {space.target.in_chans}")
        )
    return problems


def _options(options: dict[str, dict[str, tuple[Any, ...]]]) -> Problems:
    """Option choices are keyed by a registered block key, and each is valid on its own."""
    keys = {bt.key: bt for bt in block_types().values()}
    problems: Problems = []
    for key, choices in options.items():
        if key not in keys:
            problems.append(((key,), unknown_key(key, keys)))
            continue
        fields = keys[key].options.model_fields
        for name, values in choices.items():
            if name not in fields:
                problems.append(((key, name), unknown_key(name, fields)))
            elif not values:
                problems.append(((key, name), "give at least one choice"))
            for j, v in enumerate(values if name in fields else ()):
                try:
                    keys[key].options.model_validate({name: v})
                except ValidationError as exc:
                    where = (key, name, j) if len(values) > 1 else (key, name)
                    problems += [(where, msg) for _, msg in problems_from_validation(exc)]
        combos = 1
        for values in choices.values():
            combos *= max(len(values), 1)
        if combos > MAX_OPTION_COMBINATIONS:
            problems.append(
                ((key,), f"{combos:,} option combinations; at most {MAX_OPTION_COMBINATIONS:,}")
            )
    return problems


def _image_sizes(space: SearchSpace, layouts: Layouts) -> Problems:
    """The target and proxy resolutions survive every layout's downsampling."""
    problems: Problems = []
    for loc, size in (
        (("target", "image_size"), space.target.image_size),
        (("proxy", "image_size"), space.proxy.image_size),
    ):
        for n in sorted(m for m, c in layouts.by_length.items() if c):
            stride = 2 ** (n + 1)
            near = max(stride, size // stride * stride)
            if size % stride:
                problems.append(
                    (
                        loc,
                        f"{size} cannot be divided by a {n}-stage layout (stem and {n} stages "
                        f"need a multiple of {stride}, e.g. {near})",
                    )
                )
    return problems


def _widths(space: SearchSpace, layouts: Layouts) -> Problems:
    """Every width a stage can draw suits every block type that position can be.

    The block type's options decide (:meth:`BlockOptions.width_problem`), for every option
    combination the space can sample, so a new block type brings its own width rule.
    """
    n = len(space.depths)
    for i in range(n):
        for letter in layouts.letters_at(n, i):
            bt = block_types()[letter]
            for opts in _option_combinations(bt, space.options.get(bt.key, {})):
                for width in space.widths[i + 1]:
                    problem = opts.width_problem(width)
                    if problem:
                        given = opts.model_dump(exclude_defaults=True)
                        where = ", ".join(f"{k}={v}" for k, v in given.items())
                        return [
                            (
                                ("widths", i + 1),
                                f"choice {width} does not suit stage {i + 1} as a {letter} "
                                f"stage ({bt.key} {where or 'default options'}): {problem}",
                            )
                        ]
    return []


def _option_combinations(bt: BlockType, choices: dict[str, tuple[Any, ...]]) -> list[BlockOptions]:
    """Every option set a trial can draw for ``bt`` (unlisted options at their defaults)."""
    names = list(choices)
    return [
        bt.options.model_validate(dict(zip(names, combo, strict=True)))
        for combo in itertools.product(*(choices[name] for name in names))
    ]
