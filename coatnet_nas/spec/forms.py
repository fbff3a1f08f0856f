"""The two YAML forms (compact and explicit) turned into one validated :class:`ModelSpec`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from coatnet_nas.errors import SpecError
from coatnet_nas.limits import short_repr
from coatnet_nas.registry import block_type, block_types
from coatnet_nas.spec.models import (
    COMMON_KEYS,
    COMPACT_KEYS,
    EXPLICIT_KEYS,
    STAGE_KEYS,
    ModelSpec,
    StemSpec,
)
from coatnet_nas.spec.problems import (
    Loc,
    format_problems,
    letters_text,
    loc_str,
    problems_from_validation,
    unknown_key,
    unknown_letter_message,
)
from coatnet_nas.spec.yaml_io import read_yaml


def spec_from_dict(data: Any, source: str = "<spec>") -> ModelSpec:
    """Validate a parsed spec mapping in either form."""
    if not isinstance(data, Mapping):
        got = "an empty document" if data is None else f"a {type(data).__name__}"
        raise SpecError(
            f"{source}: a spec must be a YAML mapping with either layout/depths/widths "
            f"or stem/stages, got {got}."
        )
    compact = "layout" in data or "depths" in data or "widths" in data
    problems: list[tuple[Loc, str]] = []
    explicit = _to_explicit(data, compact, problems)
    try:
        spec = ModelSpec.model_validate(explicit)
    except ValidationError as exc:
        # Report field problems too, except where a key problem already names the place.
        reported = {loc[:2] for loc, _ in problems}
        if compact and any(
            loc[:1] in (("layout",), ("depths",), ("widths",)) for loc, _ in problems
        ):
            # The stage list was never built from a broken layout/depths/widths; pydantic's
            # "stages: at least 1 item" would be a second, internal-looking report of it.
            reported.add(("stages",))
        problems += [p for p in problems_from_validation(exc) if p[0][:2] not in reported]
    else:
        if not problems:
            return spec
    raise SpecError(format_problems(source, problems, compact=compact))


def _to_explicit(data: Mapping[str, Any], compact: bool, problems: list) -> dict[str, Any]:
    """Turn either YAML form into the explicit dict ModelSpec validates; collect key problems."""
    option_keys = {bt.key: letter for letter, bt in block_types().items()}
    form_keys = COMPACT_KEYS if compact else EXPLICIT_KEYS
    other = EXPLICIT_KEYS if compact else COMPACT_KEYS
    allowed = (*COMMON_KEYS, *form_keys, *option_keys)
    for key in data:
        if key in other:
            problems.append(
                (
                    (key,),
                    "use either the compact form (layout, depths, widths) or the explicit "
                    "form (stem, stages), not both",
                )
            )
        elif key not in allowed:
            problems.append(((key,), unknown_key(key, allowed)))
    out: dict[str, Any] = {k: data[k] for k in COMMON_KEYS if k in data}

    defaults: dict[str, dict[str, Any]] = {}
    for key, letter in option_keys.items():
        raw = data.get(key) or {}
        if not isinstance(raw, Mapping):
            problems.append(((key,), f"must be a mapping of {key} options, got {short_repr(raw)}"))
            raw = {}
        fields = block_type(letter).options.model_fields
        for k in raw:
            if k not in fields:
                problems.append(((key, k), unknown_key(k, fields)))
        defaults[letter] = {k: v for k, v in raw.items() if k in fields}

    if compact:
        stem, stages = _compact_stages(data, problems)
    else:
        stem, stages = data.get("stem", {}), data.get("stages")
        if "stages" not in data:
            problems.append(
                (
                    ("stages",),
                    "missing; list the stages after the stem, "
                    "e.g. [{type: C, depth: 2, width: 96}, ...]",
                )
            )
            stages = []
        elif not isinstance(stages, list) or not stages:
            problems.append(
                (("stages",), f"must be a non-empty list of stages, got {short_repr(stages)}")
            )
            stages = []
        if stem is None:
            stem = {}
        if not isinstance(stem, Mapping):
            problems.append(
                (("stem",), f"must be a mapping {{depth, width}}, got {short_repr(stem)}")
            )
            stem = {}
        for k in stem:
            if k not in StemSpec.model_fields:
                problems.append((("stem", k), unknown_key(k, StemSpec.model_fields)))

    normalized = []
    for i, stage in enumerate(stages):
        if not isinstance(stage, Mapping):
            problems.append(
                (
                    ("stages", i),
                    f"must be a mapping {{type, depth, width}}, got {short_repr(stage)}",
                )
            )
            continue
        letter = str(stage.get("type", "")).upper()
        if "type" not in stage:
            problems.append((("stages", i, "type"), f"missing; one of {letters_text()}"))
            continue
        if letter not in block_types():
            problems.append((("stages", i, "type"), unknown_letter_message(stage["type"])))
            continue
        schema = block_type(letter).options
        overrides = {}
        for k, v in stage.items():
            if k in STAGE_KEYS:
                continue
            if k in schema.model_fields:
                overrides[k] = v
            else:
                problems.append(
                    (("stages", i, k), unknown_key(k, (*STAGE_KEYS, *schema.model_fields)))
                )
        try:
            options = schema.model_validate({**defaults[letter], **overrides})
        except ValidationError as exc:
            for loc, msg in problems_from_validation(exc):
                key = block_type(letter).key
                where = (
                    ("stages", i, *loc)
                    if (loc and loc[0] in overrides) or not compact
                    else (key, *loc)
                )
                problems.append((where, msg))
            continue
        normalized.append(
            {k: stage[k] for k in ("depth", "width") if k in stage}
            | {"type": letter, "options": options}
        )
    out["stem"] = {k: v for k, v in stem.items() if k in StemSpec.model_fields}
    out["stages"] = normalized
    return out


def _compact_stages(data: Mapping[str, Any], problems: list) -> tuple[dict, list]:
    layout = data.get("layout")
    letters = parse_layout(layout, problems)
    n = len(letters)
    stem: dict[str, Any] = {}
    stages: list[dict[str, Any]] = [{"type": letter} for letter in letters]
    for key, attr in (("depths", "depth"), ("widths", "width")):
        values = data.get(key)
        if values is None:
            problems.append(
                ((key,), f"missing; give {n + 1} {key} (stem first, then one per stage)")
            )
            continue
        if not isinstance(values, list):
            problems.append(
                ((key,), f"must be a list of {n + 1} integers, got {short_repr(values)}")
            )
            continue
        if n and len(values) != n + 1:
            problems.append(
                (
                    (key,),
                    f"layout {short_repr(layout)} has {n} stage(s), so {key} needs {n + 1} entries "
                    f"(stem first), got {len(values)}",
                )
            )
            continue
        if values:
            stem[attr] = values[0]
        for stage, value in zip(stages, values[1:], strict=False):
            stage[attr] = value
    return stem, stages


def parse_layout(layout: Any, problems: list | None = None) -> list[str]:
    """``"C-C-T-T"``, ``"CCTT"`` or ``["C", "C", "T", "T"]`` -> ``["C", "C", "T", "T"]``."""
    own = problems is None
    problems = [] if own else problems
    letters: list[str] = []
    if isinstance(layout, str):
        letters = [c for c in layout.upper() if c not in "-_, "]
    elif isinstance(layout, list) and all(isinstance(x, str) for x in layout):
        letters = [x.upper() for x in layout]
    else:
        problems.append((("layout",), f"must be a string like 'C-C-T-T', got {short_repr(layout)}"))
    if not letters and not problems:
        problems.append((("layout",), "must name at least one stage, e.g. 'C-C-T-T'"))
    bad = [c for c in letters if c not in block_types()]
    if bad:
        problems.append((("layout",), unknown_letter_message(bad[0], layout)))
    if own and problems:
        raise SpecError("; ".join(f"{loc_str(loc)}: {msg}" for loc, msg in problems))
    return [] if bad else letters


def load_spec(path: str | Path) -> ModelSpec:
    """Read, parse and validate a spec file (compact or explicit form)."""
    path = Path(path)
    return spec_from_dict(read_yaml(path, what="spec"), source=str(path))
