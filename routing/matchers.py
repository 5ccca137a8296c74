"""Alertmanager label matchers: ``name="v"``, ``name!="v"``, ``name=~"re"``, ``name!~"re"``.

Parsed as Alertmanager's ``pkg/labels`` parses them (quoting and escapes,
an unescaped double quote is an error), and regexes are Go's RE2 dialect
through RE2 itself, anchored at both ends as Alertmanager anchors them: so
``(?i)critical`` and ``[[:alpha:]]`` work, and lookaheads or backreferences
are refused as Alertmanager refuses them. An absent label matches as the
empty string.

>>> m = parse_matcher('severity=~"warn.*|critical"')
>>> m.matches({"severity": "critical"}), m.matches({})
(True, False)
>>> parse_matcher('team!=""').matches({})
False
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import re2

_OPS = ("=~", "!~", "!=", "=")
# Alertmanager's pkg/labels/parse.go: label name, operator, value (quoted or not)
_MATCHER_RE = re.compile(r'^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*(.*?)\s*$', re.S)
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")   # Prometheus' model.LabelNameRE


def compile_regex(value: str) -> Any:
    """``value`` as Alertmanager compiles it: RE2, anchored (``^(?:value)$``); ValueError names the problem."""
    opts = re2.Options()
    opts.log_errors = False
    try:
        return re2.compile(f"^(?:{value})$", opts)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(f"error parsing regexp: {detail}: `{value}`") from None


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str
    _re: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def make(cls, name: str, op: str, value: str) -> "Matcher":
        if op not in _OPS:
            raise ValueError(f"unknown matcher operator {op!r}")
        rx = compile_regex(value) if op in ("=~", "!~") else None
        return cls(name, op, value, rx)

    def matches(self, labels: Mapping[str, str]) -> bool:
        v = labels.get(self.name, "")
        if self.op == "=":
            return v == self.value
        if self.op == "!=":
            return v != self.value
        hit = self._re.match(v) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        val = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{val}"'


def _unescape(raw: str, whole: str) -> str:
    """The value token, unquoted and unescaped as Alertmanager does (OpenMetrics escapes)."""
    quoted = raw.startswith('"')
    if quoted:
        raw = raw[1:]
    out: list[str] = []
    escaped = False
    for i, c in enumerate(raw):
        if escaped:
            escaped = False
            out.append("\n" if c == "n" else c if c in '"\\' else "\\" + c)
            continue
        if c == "\\":
            if i < len(raw) - 1:
                escaped = True
                continue
            out.append(c)
        elif c == '"':
            if not quoted or i < len(raw) - 1:
                raise ValueError(f"matcher value contains unescaped double quote: {whole}")
            quoted = False
        else:
            out.append(c)
    if quoted:
        raise ValueError(f"matcher value contains unescaped double quote: {whole}")
    return "".join(out)


def _split_commas(text: str) -> list[str]:
    """Split on commas outside double quotes (an escaped quote does not open or close one)."""
    tokens: list[str] = []
    cur: list[str] = []
    inside = escaped = False
    for c in text:
        if c == "," and not inside:
            tokens.append("".join(cur))
            cur = []
            continue
        if c == '"':
            if not escaped:
                inside = not inside
            else:
                escaped = False
        elif c == "\\":
            escaped = not escaped
        else:
            escaped = False
        cur.append(c)
    last = "".join(cur).strip()
    if last:
        tokens.append(last)
    return tokens


def parse_matcher(text: str) -> Matcher:
    """One matcher in Alertmanager syntax (quoted or bare value)."""
    m = _MATCHER_RE.match(text)
    if not m:
        raise ValueError(f"bad matcher format: {text}")
    return Matcher.make(m.group(1), m.group(2), _unescape(m.group(3), m.group(3)))


def parse_matchers(text: str) -> list[Matcher]:
    """A matcher list: ``{a="b", c=~"d"}`` or ``a="b",c=~"d"`` (Alertmanager's ParseMatchers)."""
    t = text
    if t.startswith("{"):
        t = t[1:]
    if t.endswith("}"):
        t = t[:-1]
    return [parse_matcher(p) for p in _split_commas(t)]


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
