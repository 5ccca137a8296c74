"""Who owns a series: the reading's ``team`` label, else the config's ownership rules, else ``unowned``."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, Mapping

UNOWNED = "unowned"


@dataclass(frozen=True)
class OwnershipRule:
    team: str
    metrics: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()

    def matches(self, metric: str, labels: Mapping[str, str]) -> bool:
        if self.metrics and not any(fnmatch.fnmatchcase(metric, g) for g in self.metrics):
            return False
        return all(fnmatch.fnmatchcase(labels.get(k, ""), v) for k, v in self.labels)


def rules_from_config(raw: Mapping[str, Any]) -> list[OwnershipRule]:
    """``teams.<name>.owns`` entries: metric globs and/or label globs (all must match)."""
    out = []
    for team, body in (raw.get("teams") or {}).items():
        owns = (body or {}).get("owns") or {}
        metrics = tuple(owns.get("metrics") or ())
        labels = tuple(sorted((str(k), str(v)) for k, v in (owns.get("labels") or {}).items()))
        if metrics or labels:
            out.append(OwnershipRule(str(team), metrics, labels))
    return out


def team_for(metric: str, labels: Mapping[str, str], rules: list[OwnershipRule]) -> str:
    if labels.get("team"):
        return labels["team"]
    for rule in rules:
        if rule.matches(metric, labels):
            return rule.team
    return UNOWNED
