"""Human units for budgets: ``4GFLOPs``, ``4.2G``, ``500MFLOPs``, ``4e9``, ``25M`` (params),
``20ms`` (latency)."""

from __future__ import annotations

import re

from coatnet_nas.errors import BudgetError
from coatnet_nas.limits import short_repr

_SCALE = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_PATTERN = re.compile(
    r"^\s*(?P<num>[-+]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(?P<scale>[kKmMgGtT]?)\s*(?P<unit>[A-Za-z]*)\s*$"
)
_UNITS = {"flops": ("", "flops", "flop", "macs", "mac"), "params": ("", "params", "param", "p")}
FORMS = {
    "flops": "'4GFLOPs', '4.2G', '500MFLOPs', '800M' or '4e9' (multiply-accumulates)",
    "params": "'25M', '30Mparams', '1.5e7' or '500K'",
}


def parse_count(text: str | float | int, kind: str = "flops", what: str | None = None) -> int:
    """Parse a positive count with an optional K/M/G/T scale and a unit matching ``kind``."""
    what = what or ("budget" if kind == "flops" else "max params")
    try:
        return _parse_count(text, kind, what)
    except BudgetError as exc:  # the parameter it is about, when ``what`` names one
        exc.param = what if what.isidentifier() else None
        raise


def _parse_count(text: str | float | int, kind: str, what: str) -> int:
    if isinstance(text, bool):
        raise BudgetError(
            f"{what}: expected a number, got {short_repr(text)}; accepted forms: {FORMS[kind]}."
        )
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = _PATTERN.match(str(text)) if len(str(text)) <= 64 else None
        unit = match.group("unit").lower() if match else ""
        if not match or unit not in _UNITS[kind]:
            raise BudgetError(
                f"{what}: cannot parse {short_repr(text)}; accepted forms: {FORMS[kind]}."
            )
        value = float(match.group("num")) * _SCALE[match.group("scale").upper()]
    if not value > 0 or value != value or value == float("inf"):
        raise BudgetError(
            f"{what}: must be a positive number, got {short_repr(text)}; "
            f"accepted forms: {FORMS[kind]}."
        )
    if round(value) < 1:  # 0.4 would round to a budget of nothing
        raise BudgetError(
            f"{what}: must be at least 1, got {short_repr(text)}; accepted forms: {FORMS[kind]}."
        )
    return round(value)


def parse_flops(text: str | float | int, what: str | None = None) -> int:
    return parse_count(text, "flops", what)


def parse_params(text: str | float | int, what: str | None = None) -> int:
    return parse_count(text, "params", what)


_LATENCY = re.compile(r"^\s*(?P<num>[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(?P<unit>[a-zµ]+)\s*$")
_SECONDS = {"s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}
LATENCY_FORMS = "'20ms', '0.02s' or '1500us' (a number with its unit: s, ms or us)"


def parse_latency(text: str | float | int, what: str = "max latency") -> float:
    """A positive latency in seconds from ``20ms``/``0.02s``/``1500us``; a float is seconds.

    Text needs its unit: a bare ``20`` would be 20 s to one reader and 20 ms to another.
    """
    try:
        return _parse_latency(text, what)
    except BudgetError as exc:  # the parameter it is about, when ``what`` names one
        exc.param = what if what.isidentifier() else None
        raise


def _parse_latency(text: str | float | int, what: str) -> float:
    if isinstance(text, bool):
        raise BudgetError(f"{what}: expected a latency, got {short_repr(text)}.")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = _LATENCY.match(str(text).lower()) if len(str(text)) <= 64 else None
        if not match or match.group("unit") not in _SECONDS:
            raise BudgetError(
                f"{what}: cannot parse {short_repr(text)}; accepted forms: {LATENCY_FORMS}."
            )
        value = float(match.group("num")) * _SECONDS[match.group("unit")]
    if not value > 0 or value == float("inf"):
        raise BudgetError(
            f"{what}: must be a positive latency, got {short_repr(text)}; accepted forms: "
            f"{LATENCY_FORMS}."
        )
    return value


def human(n: float, digits: int = 2) -> str:
    """``4168216576 -> '4.17G'``; ``24403252 -> '24.40M'``."""
    for suffix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.{digits}f}{suffix}"
    return f"{n:.0f}"


def parse_image_size(text: str | int | None, param: str = "image_size") -> tuple[int, int] | None:
    """``"224"`` or ``"256x192"`` (H x W) -> ``(H, W)``; None stays None."""
    if text is None:
        return None
    parts = str(text).lower().replace("×", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values, default=0) <= 0:
        raise BudgetError(
            f"{param}: expected a positive integer like 224 or HxW like 256x192, got "
            f"{short_repr(text)}.",
            param=param,
        )
    return (values[0], values[-1])


def parse_duration(text: str | None, param: str = "timeout") -> float | None:
    """``90``, ``90s``, ``30m``, ``1.5h`` -> seconds (None stays None)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", str(text).lower())
    if not match or float(match.group(1)) <= 0:
        raise BudgetError(
            f"{param}: expected a duration like 90s, 30m or 1.5h, got {short_repr(text)}.",
            param=param,
        )
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
