"""Inhibition by index answers exactly what Alertmanager's scan over every firing alert answers."""
from __future__ import annotations

import random
from typing import Mapping, Sequence

from harewatch.routing.inhibit import Inhibitor
from harewatch.routing.matchers import matches_all, parse_matchers
from harewatch.routing.tree import InhibitRule


def scan(rules: Sequence[InhibitRule], target: Mapping[str, str], firing: Sequence[Mapping[str, str]]) -> bool:
    """Alertmanager's inhibitor, as written in inhibit/inhibit.go: every rule, every firing source."""
    for rule in rules:
        if not matches_all(rule.target, target):
            continue
        two_sided = matches_all(rule.source, target)
        for src in firing:
            if dict(src) == dict(target):
                continue
            if two_sided and matches_all(rule.target, src):
                continue
            if matches_all(rule.source, src) and all(src.get(k, "") == target.get(k, "") for k in rule.equal):
                return True
    return False


RULES = [
    InhibitRule(parse_matchers('severity="critical"'), parse_matchers('severity="warning"'), ("alertname", "host")),
    InhibitRule(parse_matchers('type="missing_data"'), parse_matchers('type=~"flatline|spike"'), ("host",)),
    # both sides match the same alerts: two such alerts must not silence each other
    InhibitRule(parse_matchers('severity=~"warning|critical"'), parse_matchers('severity=~"critical|warning"'),
                ("zone",)),
    InhibitRule(parse_matchers('team!="payments"'), parse_matchers('team="payments"'), ("rack", "nothere")),
]


def random_alert(rng: random.Random) -> dict[str, str]:
    labels = {"alertname": rng.choice(["cpu", "latency", "orders"]), "host": f"h{rng.randrange(6)}",
              "severity": rng.choice(["warning", "critical", "info"]),
              "type": rng.choice(["spike", "flatline", "missing_data"]),
              "team": rng.choice(["payments", "platform"]), "rack": f"r{rng.randrange(3)}"}
    if rng.random() < 0.5:
        labels["zone"] = f"z{rng.randrange(3)}"
    return labels


def test_index_matches_the_scan_on_random_alerts() -> None:
    rng = random.Random(20261123)
    inhibited = 0
    for _ in range(200):
        firing = [random_alert(rng) for _ in range(rng.randrange(0, 40))]
        for rules in ([RULES[0]], [RULES[2]], RULES):
            index = Inhibitor(rules, firing)
            for target in firing + [random_alert(rng) for _ in range(10)]:
                expected = scan(rules, target, firing)
                assert (index.inhibited_by(target) is not None) == expected, (rules, target, firing)
                inhibited += expected
    assert inhibited > 500      # the comparison covered inhibited alerts, not only free ones


def test_the_source_found_is_firing_and_matches() -> None:
    rule = RULES[0]
    warning = {"alertname": "cpu", "host": "h1", "severity": "warning"}
    critical = {"alertname": "cpu", "host": "h1", "severity": "critical"}
    other_host = {"alertname": "cpu", "host": "h2", "severity": "critical"}
    index = Inhibitor([rule], [warning, other_host])
    assert index.inhibited_by(warning) is None            # the critical of another host does not count
    index.add(critical)
    assert index.inhibited_by(warning) == critical
    assert index.inhibited_by(critical) is None           # a source is not its own target
