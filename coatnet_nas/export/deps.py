"""The optional packages of the ``export`` extra, imported only when a format needs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from coatnet_nas.errors import CoatnetError

__all__ = ["require"]


def require(module: str, *, why: str) -> ModuleType:
    """Import ``module`` or say how to install it (a missing extra is the user's to fix)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise CoatnetError(
            f"{why} needs the Python package {module!r}, which is not installed ({exc}); "
            "install it with: pip install 'coatnet-nas[export]'."
        ) from None
