"""Model specs: the YAML source of truth, validated by Pydantic.

Two YAML forms normalize to one :class:`ModelSpec`:

* compact — ``layout: C-C-T-T``, ``depths``/``widths`` with the stem first, and block defaults
  under the block type's key (``mbconv:``, ``transformer:``);
* explicit — ``stem: {depth, width}`` and ``stages: [{type, depth, width, <overrides>}]``.

Validation problems are collected and reported in the form the user wrote (``widths[3]`` for a
compact spec, ``stages[2].width`` for an explicit one) as a :class:`~coatnet_nas.errors.SpecError`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from coatnet_nas.errors import SpecError
from coatnet_nas.registry import BlockOptions, block_type, block_types

Loc = tuple[str | int, ...]

COMMON_KEYS = ("name", "image_size", "in_chans", "num_classes", "drop_path_rate")
COMPACT_KEYS = ("layout", "depths", "widths")
EXPLICIT_KEYS = ("stem", "stages")
STAGE_KEYS = ("type", "depth", "width")


class SpecProblems(ValueError):
    """Several located problems found by a cross-field check."""

    def __init__(self, problems: list[tuple[Loc, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{_loc_str(loc)}: {msg}" for loc, msg in problems))


class StemSpec(BaseModel):
    """S0. ``conv`` (CoAtNet): ``depth`` 3x3 convs, the first with stride 2.
    ``patch`` (ViT-style): one non-overlapping ``patch_size`` x ``patch_size`` patch embedding.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["conv", "patch"] = "conv"
    depth: StrictInt = Field(2, ge=1, le=8)
    width: StrictInt = Field(64, ge=1, le=8192)
    patch_size: StrictInt = Field(4, ge=2, le=64, description="patch stem only")

    @model_validator(mode="after")
    def _patch_is_one_layer(self) -> StemSpec:
        if self.kind == "patch" and self.depth != 1:
            raise ValueError("a patch stem is a single layer: use depth 1")
        return self

    @property
    def stride(self) -> int:
        return self.patch_size if self.kind == "patch" else 2


class StageSpec(BaseModel):
    """One stage after the stem; its first block halves the resolution."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    depth: StrictInt = Field(ge=1, le=256)
    width: StrictInt = Field(ge=1, le=16384)
    options: SerializeAsAny[BlockOptions]

    @model_validator(mode="before")
    @classmethod
    def _typed_options(cls, data: Any) -> Any:
        # Programmatic construction may pass options as a dict; pick the type's schema.
        if isinstance(data, Mapping) and "type" in data:
            letter = str(data["type"]).upper()
            if letter not in block_types():
                raise ValueError(_unknown_letter_message(letter))
            opts = data.get("options") or {}
            schema = block_type(letter).options
            if not isinstance(opts, schema):
                opts = schema.model_validate(
                    opts.model_dump() if isinstance(opts, BaseModel) else opts
                )
            data = {**data, "type": letter, "options": opts}
        return data

    @property
    def block(self):
        return block_type(self.type)


class ModelSpec(BaseModel):
    """A normalized CoAtNet-family model: a conv stem followed by typed stages."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "coatnet"
    image_size: tuple[StrictInt, StrictInt] = (224, 224)
    in_chans: StrictInt = Field(3, ge=1, le=64)
    num_classes: StrictInt = Field(1000, ge=1)
    drop_path_rate: float = Field(0.0, ge=0.0, lt=1.0)
    stem: StemSpec = StemSpec()
    stages: tuple[StageSpec, ...] = Field(min_length=1, max_length=8)

    @field_validator("image_size", mode="before")
    @classmethod
    def _square(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return (value, value)
        if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
            return tuple(value)
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> ModelSpec:
        problems: list[tuple[Loc, str]] = []
        for i, stage in enumerate(self.stages):
            why = stage.options.width_problem(stage.width)
            if why:
                problems.append((("stages", i, "width"), why))
        why = self._image_size_problem()
        if why:
            problems.append((("image_size",), why))
        if problems:
            raise SpecProblems(problems)
        return self

    def _image_size_problem(self) -> str | None:
        """One sentence for every bad side at once, so a square size is not reported twice."""
        stride = self.total_stride
        bad = [
            (side, value)
            for side, value in zip(("height", "width"), self.image_size, strict=True)
            if value < 1 or value % stride
        ]
        if not bad:
            return None

        def near(value: int) -> str:
            lo = max(stride, value // stride * stride)
            return f"{lo} or {lo + stride}"

        h, w = self.image_size
        if h == w:
            what, hint = f"image size {h}", near(h)
        else:
            what = " and ".join(f"{side} {value}" for side, value in bad)
            hint = "; ".join(f"{near(value)} for {side} {value}" for side, value in bad)
        return (
            f"{what} does not divide evenly through the stem (stride {self.stem.stride}) and "
            f"{len(self.stages)} stages that each halve the resolution: sizes must be multiples "
            f"of {stride}, e.g. {hint}"
        )

    # --- derived views -------------------------------------------------------------------
    @property
    def layout(self) -> str:
        return "-".join(s.type for s in self.stages)

    @property
    def depths(self) -> tuple[int, ...]:
        return (self.stem.depth, *(s.depth for s in self.stages))

    @property
    def widths(self) -> tuple[int, ...]:
        return (self.stem.width, *(s.width for s in self.stages))

    @property
    def total_stride(self) -> int:
        return self.stem.stride * 2 ** len(self.stages)

    def resolutions(self, image_size: tuple[int, int] | None = None) -> list[tuple[int, int]]:
        """Output (H, W) of the stem and of every stage."""
        h, w = image_size or self.image_size
        h, w = h // self.stem.stride, w // self.stem.stride
        out = [(h, w)]
        for _ in self.stages:
            h, w = h // 2, w // 2
            out.append((h, w))
        return out

    def with_image_size(self, image_size: int | Sequence[int]) -> ModelSpec:
        return self.evolve(image_size=image_size)

    def evolve(self, **changes: Any) -> ModelSpec:
        """A re-validated copy with some top-level fields replaced."""
        data = self.model_dump()
        data["stages"] = [
            {"type": s.type, "depth": s.depth, "width": s.width, "options": s.options}
            for s in self.stages
        ]
        data.update(changes)
        return ModelSpec.model_validate(data)

    # --- serialization -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The normalized explicit form: every stage with all of its options."""
        h, w = self.image_size
        return {
            "name": self.name,
            "image_size": h if h == w else [h, w],
            "in_chans": self.in_chans,
            "num_classes": self.num_classes,
            "drop_path_rate": self.drop_path_rate,
            "stem": self._stem_dict(),
            "stages": [
                {"type": s.type, "depth": s.depth, "width": s.width, **s.options.model_dump()}
                for s in self.stages
            ],
        }

    def _stem_dict(self) -> dict[str, Any]:
        if self.stem.kind == "patch":
            return {
                "kind": "patch",
                "patch_size": self.stem.patch_size,
                "depth": 1,
                "width": self.stem.width,
            }
        return {"depth": self.stem.depth, "width": self.stem.width}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)


# --- loading ---------------------------------------------------------------------------------
def load_spec(path: str | Path) -> ModelSpec:
    """Read, parse and validate a spec file (compact or explicit form)."""
    path = Path(path)
    return spec_from_dict(read_yaml(path, what="spec"), source=str(path))


def read_yaml(path: Path, what: str = "file") -> Any:
    """``yaml.safe_load`` a file, turning every failure into a located :class:`SpecError`."""
    if not path.exists():
        raise SpecError(f"{path}: no such {what} file.")
    if not path.is_file():
        raise SpecError(f"{path}: is a directory, expected a YAML {what} file.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read {what} file ({exc}).") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.constructor.ConstructorError as exc:
        where = _mark(exc)
        tag = getattr(exc, "problem", "") or ""
        raise SpecError(
            f"{source}{where}: YAML tags that construct Python objects are not allowed "
            f"({tag.strip()}); specs are plain data: mappings, lists, numbers and strings."
        ) from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{source}{_mark(exc)}: YAML syntax error: {problem}.") from None


def _mark(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""


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
            problems.append(((key,), _unknown_key(key, allowed)))
    out: dict[str, Any] = {k: data[k] for k in COMMON_KEYS if k in data}

    defaults: dict[str, dict[str, Any]] = {}
    for key, letter in option_keys.items():
        raw = data.get(key) or {}
        if not isinstance(raw, Mapping):
            problems.append(((key,), f"must be a mapping of {key} options, got {raw!r}"))
            raw = {}
        fields = block_type(letter).options.model_fields
        for k in raw:
            if k not in fields:
                problems.append(((key, k), _unknown_key(k, fields)))
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
            problems.append((("stages",), f"must be a non-empty list of stages, got {stages!r}"))
            stages = []
        if stem is None:
            stem = {}
        if not isinstance(stem, Mapping):
            problems.append((("stem",), f"must be a mapping {{depth, width}}, got {stem!r}"))
            stem = {}
        for k in stem:
            if k not in StemSpec.model_fields:
                problems.append((("stem", k), _unknown_key(k, StemSpec.model_fields)))

    normalized = []
    for i, stage in enumerate(stages):
        if not isinstance(stage, Mapping):
            problems.append(
                (("stages", i), f"must be a mapping {{type, depth, width}}, got {stage!r}")
            )
            continue
        letter = str(stage.get("type", "")).upper()
        if "type" not in stage:
            problems.append((("stages", i, "type"), f"missing; one of {_letters()}"))
            continue
        if letter not in block_types():
            problems.append((("stages", i, "type"), _unknown_letter_message(stage["type"])))
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
                    (("stages", i, k), _unknown_key(k, (*STAGE_KEYS, *schema.model_fields)))
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
            problems.append(((key,), f"must be a list of {n + 1} integers, got {values!r}"))
            continue
        if n and len(values) != n + 1:
            problems.append(
                (
                    (key,),
                    f"layout {layout!r} has {n} stage(s), so {key} needs {n + 1} entries "
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
        problems.append((("layout",), f"must be a string like 'C-C-T-T', got {layout!r}"))
    if not letters and not problems:
        problems.append((("layout",), "must name at least one stage, e.g. 'C-C-T-T'"))
    bad = [c for c in letters if c not in block_types()]
    if bad:
        problems.append((("layout",), _unknown_letter_message(bad[0], layout)))
    if own and problems:
        raise SpecError("; ".join(f"{_loc_str(loc)}: {msg}" for loc, msg in problems))
    return [] if bad else letters


# --- error formatting ------------------------------------------------------------------------
def _letters() -> str:
    return ", ".join(f"{k} ({bt.description})" for k, bt in block_types().items())


def _unknown_letter_message(letter: Any, layout: Any = None) -> str:
    where = f" in layout {layout!r}" if layout is not None else ""
    return f"unknown stage type {str(letter)!r}{where}; registered letters: {_letters()}"


def _unknown_key(key: Any, allowed: Any) -> str:
    allowed = list(allowed)
    close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {key!r}{hint}; allowed: {', '.join(allowed)}"


def problems_from_validation(exc: ValidationError) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    for err in exc.errors(include_url=False):
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, SpecProblems):
            problems.extend(cause.problems)
            continue
        loc = tuple(x for x in err["loc"] if x != "options")
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] not in ("missing", "model_attributes_type") and "input" in err:
            msg = f"{msg} (got {err['input']!r})"
        problems.append((loc, msg))
    return problems


def validation_reason(exc: ValidationError) -> str:
    """The reason a change to a valid model failed, in the user's words (the first custom cause,
    else pydantic's messages)."""
    errors = exc.errors(include_url=False)
    cause = (errors[0].get("ctx") or {}).get("error") if errors else None
    return str(cause) if cause else "; ".join(e["msg"] for e in errors)


def settings_problems(exc: ValidationError, prefix: str = "") -> str:
    """``field: message`` for each failed setting of a flat settings model (recipes, options)."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(x) for x in (prefix, *err["loc"]) if x != "")
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg[:1].lower()}{msg[1:]}" if where else msg)
    return "; ".join(dict.fromkeys(parts))


def _loc_str(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "spec"


def _compact_loc(loc: Loc) -> str:
    """Map an explicit-form location back to the compact keys the user wrote."""
    if loc[:1] == ("stem",) and len(loc) == 2:
        return f"{loc[1]}s[0]"
    if loc[:1] == ("stages",) and len(loc) >= 3 and isinstance(loc[1], int):
        i, field = loc[1], loc[2]
        if field in ("depth", "width"):
            return f"{field}s[{i + 1}]"
        if field == "type":
            return "layout"
    return _loc_str(loc)


def format_problems(
    source: str, problems: list[tuple[Loc, str]], compact: bool = False, what: str = "spec"
) -> str:
    """One message naming the file and each offending field (deduplicated)."""
    seen: dict[str, None] = {}
    for loc, msg in problems:
        where = _compact_loc(loc) if compact else _loc_str(loc)
        seen.setdefault(f"field '{where}': {msg}", None)
    lines = list(seen)
    head = f"{source}: invalid {what}"
    if len(lines) == 1:
        return f"{head}: {lines[0]}."
    return head + f" ({len(lines)} problems):\n" + "\n".join(f"  - {line}" for line in lines)
