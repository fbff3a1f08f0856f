"""Limits on what the tool reads and prints, in one place, so hostile input fails fast and short.

A spec or a search space is small by nature (a few dozen numbers); anything far larger is a
mistake or an attack (a YAML alias bomb, a 10 MB generated file, a pattern with 2^40 layouts).
The numbers here bound the work done on input and the length of every message about it. Limits
that a model itself has (at most 8 stages, depth <= 256 per stage) are read from the spec's
Pydantic fields by :func:`field_bounds` rather than repeated, so the two can never disagree.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

MAX_YAML_BYTES = 4 * 1024 * 1024  # a spec or space is a few hundred bytes; configs a few KB
MAX_YAML_NODES = 100_000  # mappings, lists and scalars after aliases are expanded
MAX_YAML_CHARS = 10_000_000  # scalar characters after aliases are expanded
MAX_YAML_DEPTH = 64  # nesting; specs need 4 levels
MAX_MESSAGE_CHARS = 1_500  # one error paragraph, whatever produced it
MAX_LISTED = 12  # items a message lists before "... and N more"
MAX_REPR_CHARS = 80  # a user's value quoted back in a message
ENUMERATE_LAYOUTS = 10_000  # a pattern with more layouts is sampled by index, never listed
MAX_OPTION_COMBINATIONS = 10_000  # block option sets a space may ask to check against widths


def short_repr(value: Any, limit: int = MAX_REPR_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters, so a message never echoes a whole input."""
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ (or a recursive structure) must not hide the error
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def listed(items: Any, limit: int = MAX_LISTED, sep: str = ", ") -> str:
    """``a, b, c … and 7 more``: at most ``limit`` items of a list, with the count of the rest."""
    items = [str(x) for x in items]
    if len(items) <= limit:
        return sep.join(items)
    return f"{sep.join(items[:limit])} … and {len(items) - limit} more"


def bounded(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` cut to ``limit`` characters (the last defence: libraries bound their own)."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 40].rstrip()
    return f"{cut} … ({len(text) - len(cut):,} more characters)"


def field_bounds(model: type[BaseModel], name: str) -> dict[str, Any]:
    """The numeric and length constraints of ``model.name`` (``ge``, ``le``, ``max_length``...)."""
    out: dict[str, Any] = {}
    for item in model.model_fields[name].metadata:
        for attr in ("ge", "gt", "le", "lt", "min_length", "max_length"):
            value = getattr(item, attr, None)
            if value is not None:
                out[attr] = value
    return out


def count_text(n: int) -> str:
    """``4``, ``6,561``, ``2^40`` or ``~1.2e+13``: a layout count people can read."""
    if n < 10**6:
        return f"{n:,}"
    if n & (n - 1) == 0:
        return f"2^{n.bit_length() - 1}"
    return f"~{float(n):.2g}"
