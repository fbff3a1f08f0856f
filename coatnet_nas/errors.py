"""User-facing error types.

Every error a user can cause by bad input derives from :class:`CoatnetError`; the CLI turns these
into a one-paragraph message and exit code 2, while anything else stays a real bug with a traceback.

Messages are written for the Python caller and name the parameter they are about by its Python
name (``workers must be >= 1``); ``param`` carries that name so the command line can say which
option it was without the library ever knowing a flag.
"""

from __future__ import annotations


class CoatnetError(Exception):
    """Bad input from the user (a spec, a budget, a path, a dataset); message is user-facing.

    ``param`` is the keyword argument (or dotted setting, e.g. ``proxy.epochs``) the problem is
    about, when there is one; the message mentions it by that name.
    """

    exit_code = 2

    def __init__(self, message: str, *, param: str | None = None):
        super().__init__(message)
        self.param = param


class SpecError(CoatnetError):
    """A model or search-space spec that cannot be loaded or fails validation."""


class BudgetError(CoatnetError):
    """A budget string or value that cannot be parsed or cannot be met."""


class DataError(CoatnetError):
    """A dataset that cannot be found, read or verified."""


def as_choice(kind, value, param: str):  # type: ignore[no-untyped-def]
    """``value`` (a member or its value) as a member of the str Enum ``kind``, else one
    :class:`CoatnetError` naming ``param`` and the allowed values."""
    try:
        return kind(value.value if isinstance(value, kind) else value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        shown = repr(value.value if hasattr(value, "value") else value)[:80]
        raise CoatnetError(f"{param} must be one of {allowed}, got {shown}.", param=param) from None
