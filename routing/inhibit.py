"""Inhibition by index: which firing alert, if any, mutes an alert under the config's inhibit rules.

Alertmanager's inhibitor keeps each rule's source alerts in a cache and scans
it per target; here each rule's firing sources are indexed by the values of the
rule's ``equal`` labels, so checking a target is a dictionary lookup, not a
scan over every firing alert (2,000 firing alerts cost the same as 2).

Semantics are Alertmanager's (``inhibit/inhibit.go``): a target is inhibited
when a firing alert matches the rule's source matchers and has the same value
(an absent label is the empty value) for every ``equal`` label; when the target
matches the source side too, alerts that match both sides cannot inhibit it
(two such alerts would otherwise silence each other), and so an alert never
inhibits itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Protocol, Sequence

from harewatch.routing.matchers import Matcher, matches_all


class Rule(Protocol):
    """What an inhibit rule is made of (:class:`routing.tree.InhibitRule`)."""

    source: list[Matcher]
    target: list[Matcher]
    equal: tuple[str, ...]


@dataclass
class _Sources:
    """A rule's firing sources that share one tuple of ``equal`` values."""

    only_source: list[Mapping[str, str]] = field(default_factory=list)   # match the source side only
    both_sides: list[Mapping[str, str]] = field(default_factory=list)    # match source and target


class Inhibitor:
    """The inhibit rules over one snapshot of firing alerts' label sets."""

    def __init__(self, rules: Sequence[Rule], firing: Iterable[Mapping[str, str]]) -> None:
        self.rules = list(rules)
        self.index: list[dict[tuple[str, ...], _Sources]] = [{} for _ in self.rules]
        for labels in firing:
            self.add(labels)

    def add(self, labels: Mapping[str, str]) -> None:
        """Index one firing alert under every rule whose source side it matches."""
        for rule, idx in zip(self.rules, self.index):
            if not matches_all(rule.source, labels):
                continue
            entry = idx.setdefault(_key(rule, labels), _Sources())
            (entry.both_sides if matches_all(rule.target, labels) else entry.only_source).append(labels)

    def inhibited_by(self, labels: Mapping[str, str]) -> Mapping[str, str] | None:
        """The firing alert that inhibits an alert with ``labels``, or None."""
        for rule, idx in zip(self.rules, self.index):
            if not idx or not matches_all(rule.target, labels):
                continue
            entry = idx.get(_key(rule, labels))
            if entry is None:
                continue
            if matches_all(rule.source, labels):     # two-sided: only source-only alerts count
                if entry.only_source:
                    return entry.only_source[0]
            elif entry.only_source or entry.both_sides:
                return (entry.only_source or entry.both_sides)[0]
        return None


def _key(rule: Rule, labels: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(labels.get(name, "") for name in rule.equal)
