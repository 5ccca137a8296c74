"""Alertmanager label matchers: ``name="v"``, ``name!="v"``, ``name=~"re"``, ``name!~"re"``.

Regexes are fully anchored; an absent label matches as the empty string.

>>> m = parse_matcher('severity=~"warn.*|critical"')
>>> m.matches({"severity": "critical"}), m.matches({})
(True, False)
>>> parse_matcher('team!=""').matches({})
False
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

_OPS = ("=~", "!~", "!=", "=")
_NAME = r'[a-zA-Z_][a-zA-Z0-9_]*|"(?:[^"\\]|\\.)*"'
_MATCHER_RE = re.compile(rf'^\s*({_NAME})\s*(=~|!~|!=|=)\s*(.*?)\s*$', re.S)


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str
    _re: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def make(cls, name: str, op: str, value: str) -> "Matcher":
        if op not in _OPS:
            raise ValueError(f"unknown matcher operator {op!r}")
        rx = None
        if op in ("=~", "!~"):
            try:
                rx = re.compile(f"^(?:{value})$", re.S)
            except re.error as exc:
                raise ValueError(f"bad regex {value!r}: {exc}") from None
        return cls(name, op, value, rx)

    def matches(self, labels: Mapping[str, str]) -> bool:
        v = labels.get(self.name, "")
        if self.op == "=":
            return v == self.value
        if self.op == "!=":
            return v != self.value
        hit = self._re.match(v) is not None  # type: ignore[union-attr]
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        val = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{val}"'


def _unquote(s: str) -> str:
    if len(s) >= 2 and s[0] == s[-1] == '"':
        return re.sub(r'\\(.)', lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), s[1:-1])
    return s


def _split_commas(text: str) -> list[str]:
    out, cur, quoted, esc = [], [], False, False
    for c in text:
        if esc:
            cur.append(c)
            esc = False
            continue
        if c == "\\":
            cur.append(c)
            esc = True
            continue
        if c == '"':
            quoted = not quoted
        if c == "," and not quoted:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(c)
    out.append("".join(cur))
    return [p for p in (x.strip() for x in out) if p]


def parse_matcher(text: str) -> Matcher:
    """One matcher in Alertmanager syntax (quoted or bare value)."""
    m = _MATCHER_RE.match(text)
    if not m:
        raise ValueError(f"bad matcher {text!r} (expected e.g. severity=\"critical\" or team=~\"a|b\")")
    return Matcher.make(_unquote(m.group(1)), m.group(2), _unquote(m.group(3)))


def parse_matchers(text: str) -> list[Matcher]:
    """A matcher list: ``{a="b", c=~"d"}`` or ``a="b",c=~"d"``."""
    t = text.strip()
    if t.startswith("{") and t.endswith("}"):
        t = t[1:-1]
    return [parse_matcher(p) for p in _split_commas(t)]


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
