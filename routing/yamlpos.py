"""YAML loading that remembers line numbers, so config errors can name them.

Mappings load as :class:`LDict` and sequences as :class:`LList`; both carry
the line where they start and the line of each key / item.
"""
from __future__ import annotations

from typing import Any

import yaml

from harewatch.errors import ConfigError


class LDict(dict[Any, Any]):
    """A dict that knows the line of each of its keys."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        return int(getattr(self, "key_lines", {}).get(key, self.line))


class LList(list[Any]):
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


MAX_DEPTH = 100          # nesting of collections; a config is a few levels deep
MAX_NODES = 100_000      # values once aliases are expanded; a real config has a few thousand


def _check_depth(text: str, filename: str) -> None:
    """Refuse deep nesting before the (recursive) composer sees it: a RecursionError is no error message."""
    opening = (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken, yaml.FlowMappingStartToken,
               yaml.FlowSequenceStartToken)
    closing = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)
    depth = 0
    for tok in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(tok, opening):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(f"nested more than {MAX_DEPTH} levels deep", file=filename,
                                  line=tok.start_mark.line + 1)
        elif isinstance(tok, closing):
            depth -= 1


def _check_size(root: yaml.Node, filename: str) -> None:
    """Refuse alias bombs: count the values the document holds once every alias is expanded.

    Aliases share their node, so sizes are memoised per node and the count costs
    one pass over the composed document however large the expansion would be.
    """
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in size:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for kv in node.value for n in kv]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if not done:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in size)
            continue
        total = 1 + sum(size.get(id(c), 1) for c in children)
        size[id(node)] = total
        if total > MAX_NODES:
            raise ConfigError(f"expands to more than {MAX_NODES:,} values (YAML aliases nested in aliases?)",
                              file=filename, line=node.start_mark.line + 1)


def load_yaml(text: str, filename: str) -> Any:
    """Parse YAML text into LDict/LList values; syntax errors become ConfigError with the line.

    Deeply nested documents and alias bombs are refused with the line where
    they start, before they can take the process's stack or memory.
    """
    loader = _Loader(text)
    loader.filename = filename
    try:
        _check_depth(text, filename)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_size(node, filename)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(f"YAML syntax error: {exc.problem or exc}", file=filename, line=line) from None
    finally:
        loader.dispose()
