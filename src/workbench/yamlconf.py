"""Plant configuration in YAML, read with the line of every key so errors can say where.

:func:`load` returns plain dicts and lists whose subclasses remember where each item stood
(``node.line``, ``node.line_of(key)``), so a validator can say ``tags.yaml:42: unknown key 'unti'``.
Duplicate keys in one mapping are an error here (PyYAML keeps the last one silently).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from workbench.errors import ConfigError


class LocatedDict(dict):
    """A mapping that knows the 1-based line of itself and of each key."""

    line: int = 0
    lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        """Line of ``key``, or of the mapping when the key is absent."""
        return self.lines.get(key, self.line)


class LocatedList(list):
    """A sequence that knows the 1-based line of itself and of each item."""

    line: int = 0
    lines: list[int]

    def line_of(self, index: int) -> int:
        """Line of item ``index``."""
        return self.lines[index] if 0 <= index < len(self.lines) else self.line


class _Loader(yaml.SafeLoader):
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LocatedDict:
    out = LocatedDict()
    out.line = node.start_mark.line + 1
    out.lines = {}
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out.lines:
            raise ConfigError(
                f"{loader.name}:{key_node.start_mark.line + 1}: key {key!r} given twice "
                f"(first on line {out.lines[key]})"
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
    return out


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LocatedList:
    out = LocatedList(loader.construct_object(n, deep=True) for n in node.value)
    out.line = node.start_mark.line + 1
    out.lines = [n.start_mark.line + 1 for n in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def load(path: Path) -> Any:
    """Read ``path`` as YAML with line numbers.

    Raises
    ------
    ConfigError
        The file is missing or not valid YAML (with the line PyYAML reports), or a mapping
        repeats a key.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    loader = _Loader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    finally:
        loader.dispose()
