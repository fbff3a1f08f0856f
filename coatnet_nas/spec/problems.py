"""Spec problems in the user's words: located messages, did-you-mean, one bounded report."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import ValidationError

from coatnet_nas.limits import MAX_LISTED, MAX_MESSAGE_CHARS, short_repr
from coatnet_nas.registry import block_types

Loc = tuple[str | int, ...]


class SpecProblems(ValueError):
    """Several located problems found by a cross-field check."""

    def __init__(self, problems: list[tuple[Loc, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{loc_str(loc)}: {msg}" for loc, msg in problems))


def letters_text() -> str:
    return ", ".join(f"{k} ({bt.description})" for k, bt in block_types().items())


def unknown_letter_message(letter: Any, layout: Any = None) -> str:
    where = f" in layout {short_repr(layout)}" if layout is not None else ""
    letters = letters_text()
    return f"unknown stage type {short_repr(str(letter))}{where}; registered letters: {letters}"


def unknown_key(key: Any, allowed: Any) -> str:
    allowed = list(allowed)
    close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {short_repr(key)}{hint}; allowed: {', '.join(map(str, allowed))}"


def problems_from_validation(exc: ValidationError) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    for err in exc.errors(include_url=False):
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, SpecProblems):
            problems.extend(cause.problems)
            continue
        loc = tuple(x for x in err["loc"] if x != "options")
        msg = err["msg"].removeprefix("Value error, ")
        # Quote the user's value back, briefly; a whole-model error (no location) would echo
        # the entire input, so it gets no quote.
        if loc and err["type"] not in ("missing", "model_attributes_type") and "input" in err:
            msg = f"{msg} (got {short_repr(err['input'])})"
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


def loc_str(loc: Loc) -> str:
    out = ""
    for part in loc:
        part = part if isinstance(part, int) else _short_key(part)
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "spec"


def _short_key(part: object) -> str:
    """A key as written, cut short: a location must not echo a 1 MB key back."""
    text = str(part)
    if not text.strip() or not text.isprintable():  # '' or control characters: show them quoted
        text = repr(text)
    return text if len(text) <= 40 else f"{text[:39]}…"


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
    return loc_str(loc)


def format_problems(
    source: str, problems: list[tuple[Loc, str]], compact: bool = False, what: str = "spec"
) -> str:
    """One message naming the file and each offending field (deduplicated)."""
    seen: dict[str, None] = {}
    for loc, msg in problems:
        where = _compact_loc(loc) if compact else loc_str(loc)
        seen.setdefault(f"field '{where}': {msg}", None)
    lines = list(seen)
    head = f"{source}: invalid {what}"
    if len(lines) == 1:
        return f"{head}: {lines[0][: MAX_MESSAGE_CHARS - len(head) - 3]}."
    # At most MAX_LISTED lines and MAX_MESSAGE_CHARS in all: the rest is counted, not shown.
    room = MAX_MESSAGE_CHARS - len(head) - 60
    shown: list[str] = []
    for line in lines[:MAX_LISTED]:
        line = f"  - {line}"
        if len(line) > room:
            break
        shown.append(line)
        room -= len(line) + 1
    if len(shown) < len(lines):
        shown.append(f"  … and {len(lines) - len(shown)} more problems")
    return head + f" ({len(lines)} problems):\n" + "\n".join(shown)
