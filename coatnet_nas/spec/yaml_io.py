"""Reading YAML: parsed safely (no Python objects), bounded, every failure located.

Every YAML file the tool reads (specs, search spaces, configs) goes through :func:`parse_yaml`, so
one set of limits protects all of them: PyYAML shares an aliased node instead of copying it, so a
450-byte "billion laughs" document parses instantly and only explodes later, when something walks
it (validation, ``repr`` in a message, JSON). The composed node graph is therefore measured as if
every alias were expanded, and refused above :data:`~coatnet_nas.limits.MAX_YAML_NODES` before a
single Python object is built.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml

from coatnet_nas.errors import SpecError
from coatnet_nas.limits import MAX_YAML_BYTES, MAX_YAML_CHARS, MAX_YAML_DEPTH, MAX_YAML_NODES


def read_yaml(path: Path, what: str = "file") -> Any:
    """Parse a YAML file, turning every failure (missing, unreadable, too big) into a SpecError."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SpecError(f"{path}: no such {what} file.") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read {what} file ({exc.strerror or exc}).") from None
    if stat.S_ISDIR(info.st_mode):
        raise SpecError(f"{path}: is a directory, expected a YAML {what} file.")
    if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
        raise SpecError(f"{path}: is not a regular file, expected a YAML {what} file.")
    if info.st_size > MAX_YAML_BYTES:
        raise SpecError(
            f"{path}: {info.st_size:,} bytes is too large for a YAML {what} file "
            f"(limit {MAX_YAML_BYTES:,} bytes)."
        )
    try:
        raw = path.read_bytes()[: MAX_YAML_BYTES + 1]
        text = raw.decode("utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read {what} file ({exc.strerror or exc}).") from None
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{path}: cannot read {what} file: not UTF-8 text (byte {exc.start})."
        ) from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` with alias, size and depth limits; failures become a SpecError."""
    if len(text) > MAX_YAML_BYTES:
        raise SpecError(f"{source}: {len(text):,} characters is too large for a YAML file.")
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader subclass
    except yaml.constructor.ConstructorError as exc:
        where = _mark(exc)
        tag = (getattr(exc, "problem", "") or "").strip()[:120]
        if "constructor for the tag" not in tag:  # e.g. a list used as a mapping key
            raise SpecError(f"{source}{where}: YAML error: {tag}.") from None
        raise SpecError(
            f"{source}{where}: YAML tags that construct Python objects are not allowed "
            f"({tag}); specs are plain data: mappings, lists, numbers and strings."
        ) from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["?"])[0]
        raise SpecError(f"{source}{_mark(exc)}: YAML syntax error: {problem[:200]}.") from None
    except RecursionError:  # PyYAML composes recursively: thousands of '[' exhaust the stack
        raise SpecError(
            f"{source}: YAML nested too deeply (limit {MAX_YAML_DEPTH} levels)."
        ) from None
    except _TooBig as exc:
        raise SpecError(f"{source}: {exc}") from None


class _TooBig(Exception):
    pass


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that measures the composed document before constructing anything."""

    def get_single_node(self):  # type: ignore[no-untyped-def]
        node = super().get_single_node()
        if node is not None:
            _measure(node)
        return node


def _measure(root: yaml.Node) -> None:
    """Count nodes and scalar characters as if aliases were copies; refuse cycles and depth.

    Sizes are memoized per node object (an alias is the same object), so measuring a bomb costs
    its size in the file, not its expanded size.
    """
    size: dict[int, tuple[int, int]] = {}
    active: set[int] = set()
    # Iterative post-order walk: (node, depth, children done?)
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            nodes, chars = 1, 0
            for child in _children(node):
                n, c = size[id(child)]
                nodes, chars = nodes + n, chars + c
            if nodes > MAX_YAML_NODES or chars > MAX_YAML_CHARS:
                raise _TooBig(
                    "YAML document too large once its aliases (*name) are expanded (more than "
                    f"{MAX_YAML_NODES:,} values or {MAX_YAML_CHARS:,} characters); "
                    "write the values out or use fewer aliases."
                )
            size[key] = (nodes, chars)
            continue
        if key in size:
            continue
        if key in active:
            raise _TooBig("YAML aliases refer to themselves (a recursive structure).")
        if depth > MAX_YAML_DEPTH:
            raise _TooBig(f"YAML nested too deeply (limit {MAX_YAML_DEPTH} levels).")
        if isinstance(node, yaml.ScalarNode):
            size[key] = (1, len(node.value))
            continue
        active.add(key)
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in _children(node))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _mark(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
