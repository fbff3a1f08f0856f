"""The specs that ship inside the package: CoAtNet-0..4, the layout-study variants, the default
search space.

They are package data (``coatnet_nas/specs/``; the repository's top-level ``specs/`` is a link to
that folder, so there is one copy), found with :mod:`importlib.resources` so that an installed
wheel works from any directory, not only a source checkout.

A preset's name is its path under ``specs/`` without the suffix: ``coatnet0``, ``layouts/cctt``.
:func:`resolve_spec` is the rule every spec argument follows: an existing file is read as a file;
otherwise a preset name selects the preset; otherwise the error lists both options.
"""

from __future__ import annotations

import atexit
import contextlib
import difflib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from coatnet_nas.errors import SpecError
from coatnet_nas.spec import ModelSpec, load_spec, parse_yaml, spec_from_dict

__all__ = [
    "default_space_path",
    "load_preset",
    "preset_names",
    "preset_path",
    "resolve_spec",
    "resource_path",
]

SUFFIX = ".yaml"
# Folders under specs/ that hold something other than model specs.
_NOT_MODELS = ("search",)

# Real files for resources that live inside an archive (zipimport): extracted once, kept until
# exit, so callers can hold on to a Path (DEFAULT_SPACE, DEFAULT_BASE) for the whole process.
_extracted = contextlib.ExitStack()
atexit.register(_extracted.close)


def _root() -> Traversable:
    return resources.files("coatnet_nas") / "specs"


def _walk(folder: Traversable, prefix: str = "") -> list[str]:
    names: list[str] = []
    for entry in folder.iterdir():
        if entry.is_dir():
            if not prefix and entry.name in _NOT_MODELS:
                continue
            names += _walk(entry, f"{prefix}{entry.name}/")
        elif entry.name.endswith(SUFFIX):
            names.append(prefix + entry.name.removesuffix(SUFFIX))
    return names


def preset_names() -> list[str]:
    """Every bundled model spec: top-level specs first, then sub-folders, each sorted."""
    return sorted(_walk(_root()), key=lambda n: (n.count("/"), n))


def _unknown(name: str) -> SpecError:
    names = preset_names()
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return SpecError(f"unknown preset {name!r}{hint}; presets: {', '.join(names)}.")


def _traversable(name: str) -> Traversable:
    if name not in preset_names():
        raise _unknown(name)
    entry = _root()
    for part in f"{name}{SUFFIX}".split("/"):
        entry = entry / part
    return entry


def resource_path(relative: str) -> Path:
    """A real file path for ``specs/<relative>`` (extracted if the package is zipped)."""
    entry = _root()
    for part in relative.split("/"):
        entry = entry / part
    if isinstance(entry, Path):
        return entry
    return _extracted.enter_context(resources.as_file(entry))


def preset_path(name: str) -> Path:
    """The file of a bundled model spec, for APIs that take a path (``load_spec``)."""
    _traversable(name)  # unknown names fail here with the list of presets
    return resource_path(f"{name}{SUFFIX}")


def default_space_path() -> Path:
    """The bundled default search space (``load_space`` reads it when given no path)."""
    return resource_path(f"search/default{SUFFIX}")


def load_preset(name: str) -> ModelSpec:
    """Parse and validate a bundled model spec by name (``coatnet0``, ``layouts/cttt``)."""
    entry = _traversable(name)
    source = f"preset {name}"
    return spec_from_dict(parse_yaml(entry.read_text(encoding="utf-8"), source), source=source)


def resolve_spec(arg: str | Path) -> ModelSpec:
    """A spec argument: an existing path is a file, else a preset name, else a clear error.

    A file wins over a preset of the same name, so a user's own ``coatnet0`` file is never
    shadowed by the bundled one.
    """
    path = Path(arg)
    try:
        exists = path.exists()
    except OSError as exc:  # e.g. a name too long for the file system
        raise SpecError(f"{_shown(arg)}: cannot read spec file ({exc.strerror}).") from None
    if exists:
        return load_spec(path)
    names = preset_names()
    if str(arg) in names:
        return load_preset(str(arg))
    close = difflib.get_close_matches(str(arg), names, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise SpecError(
        f"{_shown(arg)}: no such spec file or preset{hint}; give a spec YAML file or a "
        f"preset name: {', '.join(names)}."
    )


def _shown(arg: str | Path, limit: int = 120) -> str:
    """The argument as typed, cut short so a pasted blob cannot flood the one-line error."""
    text = str(arg)
    return text if len(text) <= limit else f"{text[:limit]}..."
