"""YAML loading that remembers line numbers, so config errors can name them.

Mappings load as :class:`LDict` and sequences as :class:`LList`; both carry
the line where they start and the line of each key / item.
"""
from __future__ import annotations

from typing import Any

import yaml

from harewatch.errors import ConfigError


class LDict(dict):
    """A dict that knows the line of each of its keys."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        return getattr(self, "key_lines", {}).get(key, self.line)


class LList(list):
    """A list that knows the line of each item."""

    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        lines = getattr(self, "item_lines", [])
        return lines[index] if 0 <= index < len(lines) else self.line


class _Loader(yaml.SafeLoader):
    filename = "<config>"


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LDict:
    loader.flatten_mapping(node)
    out = LDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for k_node, v_node in node.value:
        key = loader.construct_object(k_node, deep=True)
        if key in out:
            raise ConfigError(f"duplicate key {key!r}", file=loader.filename,
                              line=k_node.start_mark.line + 1, field=str(key))
        out[key] = loader.construct_object(v_node, deep=True)
        out.key_lines[key] = k_node.start_mark.line + 1
    return out


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LList:
    out = LList(loader.construct_object(n, deep=True) for n in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [n.start_mark.line + 1 for n in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def load_yaml(text: str, filename: str) -> Any:
    """Parse YAML text into LDict/LList values; syntax errors become ConfigError with the line."""
    loader = _Loader(text)
    loader.filename = filename
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(f"YAML syntax error: {exc.problem or exc}", file=filename, line=line) from None
    finally:
        loader.dispose()
