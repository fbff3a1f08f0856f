"""User-facing error types.

Every error a user can cause by bad input derives from :class:`CoatnetError`; the CLI turns these
into a one-paragraph message and exit code 2, while anything else stays a real bug with a traceback.
"""

from __future__ import annotations


class CoatnetError(Exception):
    """Bad input from the user (a spec, a budget, a path, a dataset); message is user-facing."""

    exit_code = 2


class SpecError(CoatnetError):
    """A model or search-space spec that cannot be loaded or fails validation."""


class BudgetError(CoatnetError):
    """A budget string or value that cannot be parsed or cannot be met."""


class DataError(CoatnetError):
    """A dataset that cannot be found, read or verified."""
