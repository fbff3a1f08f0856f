"""Reading spec files: YAML parsed safely (no Python objects), every failure located."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from coatnet_nas.errors import SpecError


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
