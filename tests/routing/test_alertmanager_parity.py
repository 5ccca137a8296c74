"""Alertmanager parity, held against the real thing: amtool routes the same labels to the same receivers
(Go RE2 regexes, anchored), refuses the same configs (with the same wording where it helps a search),
and inhibition follows Alertmanager's inhibitor."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harewatch.errors import ConfigError
from harewatch.routing.config import parse_config
from harewatch.routing.matchers import parse_matcher, parse_matchers
from harewatch.routing.tree import InhibitRule, parse_routing

needs_amtool = pytest.mark.skipif(not shutil.which("amtool"), reason="amtool (prometheus-alertmanager) not installed")

REGEX_CONFIG = r"""
route:
  receiver: fallback
  routes:
    - matchers: ['severity=~"(?i)critical"']
      receiver: crit-any-case
    - matchers: ['host=~"[[:alpha:]]+-[[:digit:]]+"']
      receiver: posix-classes
    - match_re: {service: 'db|cache'}
      receiver: legacy-re
    - matchers: ['path=~"a.b"']
      receiver: dot-no-newline
    - matchers: ['env=~"prod"']
      receiver: anchored
    - matchers: ['msg=~"\\Qa+b\\E"']
      receiver: quoted-literal
receivers: [{name: fallback}, {name: crit-any-case}, {name: posix-classes}, {name: legacy-re},
            {name: dot-no-newline}, {name: anchored}, {name: quoted-literal}]
"""

REGEX_CASES = [
    {"severity": "CRITICAL"}, {"severity": "Critical"}, {"severity": "critical!"},
    {"host": "web-01"}, {"host": "web01"}, {"host": "web-01x"},
    {"service": "db"}, {"service": "dbx"}, {"service": "cache"},
    {"path": "a-b"}, {"env": "production"}, {"env": "prod"}, {"msg": "a+b"}, {"msg": "aab"},
]


def routing(text: str, name: str = "am.yml"):
    cfg = parse_config(text, name, env={})
    return parse_routing(cfg.raw, cfg.path)


def amtool_routes(config: Path, labels: dict[str, str]) -> list[str]:
    args = [f"{k}={v}" for k, v in labels.items()]
    proc = subprocess.run(["amtool", "config", "routes", "test", f"--config.file={config}", *args],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split(",")


@pytest.mark.parametrize("labels", REGEX_CASES, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
@needs_amtool
def test_regex_dialect_routes_like_amtool(tmp_path, labels):
    f = tmp_path / "am.yml"
    f.write_text(REGEX_CONFIG)
    rc = routing(REGEX_CONFIG)
    assert [r.receiver for r in rc.match(labels)] == amtool_routes(f, labels)


def test_re2_semantics_without_amtool():
    assert parse_matcher('s=~"(?i)critical"').matches({"s": "CriTical"})
    assert parse_matcher('h=~"[[:alpha:]]+"').matches({"h": "web"})
    assert not parse_matcher('p=~"a.b"').matches({"p": "a\nb"})          # Go: '.' does not match a newline
    assert not parse_matcher('e=~"prod"').matches({"e": "production"})   # anchored at both ends


# configs Alertmanager refuses: (name, config, words of Alertmanager's error)
REFUSED = [
    ("no root route", "receivers: [{name: a}]\n", "no routes provided"),
    ("continue on the root route", "route: {receiver: a, continue: true}\nreceivers: [{name: a}]\n",
     "cannot have continue in root route"),
    ("mute intervals on the root route",
     "route: {receiver: a, mute_time_intervals: [w]}\nreceivers: [{name: a}]\n"
     "time_intervals: [{name: w, time_intervals: [{weekdays: [saturday]}]}]\n",
     "root route must not have any mute time intervals"),
    ("matchers on the root route", "route: {receiver: a, matchers: ['x=\"y\"']}\nreceivers: [{name: a}]\n",
     "root route must not have any matchers"),
    ("a label twice in group_by", "route: {receiver: a, group_by: [x, x]}\nreceivers: [{name: a}]\n",
     'duplicated label "x" in group_by'),
    ("a null match_re value", "route:\n  receiver: a\n  routes:\n    - match_re: {x: null}\n      receiver: a\n"
     "receivers: [{name: a}]\n", 'invalid regexp value for "x"'),
    ("an unescaped double quote", "route:\n  receiver: a\n  routes:\n    - matchers: ['x=\"a\"b\"']\n"
     "      receiver: a\nreceivers: [{name: a}]\n", "unescaped double quote"),
    ("an invalid label name in match", "route:\n  receiver: a\n  routes:\n    - match: {'1x': y}\n"
     "      receiver: a\nreceivers: [{name: a}]\n", 'invalid label name "1x"'),
    ("a duration without a unit", "route: {receiver: a, group_wait: 30}\nreceivers: [{name: a}]\n",
     "not a valid duration string"),
    ("a lookahead", "route:\n  receiver: a\n  routes:\n    - matchers: ['x=~\"(?!a)b\"']\n      receiver: a\n"
     "receivers: [{name: a}]\n", "error parsing regexp"),
    ("a backreference", "route:\n  receiver: a\n  routes:\n    - match_re: {x: '(a)\\1'}\n      receiver: a\n"
     "receivers: [{name: a}]\n", "error parsing regexp"),
    ("a receiver defined twice", "route: {receiver: a}\nreceivers: [{name: a}, {name: a}]\n",
     'notification config name "a" is not unique'),
    ("an undefined receiver", "route: {receiver: b}\nreceivers: [{name: a}]\n", 'undefined receiver "b" used in route'),
    ("zero group_interval", "route: {receiver: a, group_interval: 0s}\nreceivers: [{name: a}]\n",
     "group_interval cannot be zero"),
    ("wildcard and labels in group_by", "route: {receiver: a, group_by: ['...', x]}\nreceivers: [{name: a}]\n",
     "cannot have wildcard group_by"),
    ("an invalid label name in equal", "route: {receiver: a}\nreceivers: [{name: a}]\n"
     "inhibit_rules: [{source_matchers: ['a=\"b\"'], target_matchers: ['c=\"d\"'], equal: ['1x']}]\n",
     'invalid label name "1x" in equal list'),
]

ACCEPTED = [
    ("(?i) flag", "route:\n  receiver: a\n  routes:\n    - matchers: ['sev=~\"(?i)critical\"']\n      receiver: a\n"
     "receivers: [{name: a}]\n"),
    ("an inhibit rule without source matchers", "route: {receiver: a}\nreceivers: [{name: a}]\n"
     "inhibit_rules: [{target_matchers: ['c=\"d\"'], equal: [x]}]\n"),
    ("zero group_wait", "route: {receiver: a, group_wait: 0s}\nreceivers: [{name: a}]\n"),
    ("label names with colons in matchers", "route:\n  receiver: a\n  routes:\n    - matchers: ['a:b=\"c\"']\n"
     "      receiver: a\nreceivers: [{name: a}]\n"),
]


@pytest.mark.parametrize("name,text,words", REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_like_alertmanager(tmp_path, name, text, words):
    with pytest.raises(ConfigError) as exc:
        routing(text, str(tmp_path / "am.yml"))
    e = exc.value
    assert words in str(e) and e.file == str(tmp_path / "am.yml") and e.line is not None and e.field, str(e)
    if shutil.which("amtool"):
        f = tmp_path / "am.yml"
        f.write_text(text)
        proc = subprocess.run(["amtool", "check-config", str(f)], capture_output=True, text=True)
        assert proc.returncode != 0, f"amtool accepts {name}: {proc.stdout}"


@pytest.mark.parametrize("name,text", ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_accepted_like_alertmanager(tmp_path, name, text):
    routing(text)
    if shutil.which("amtool"):
        f = tmp_path / "am.yml"
        f.write_text(text)
        proc = subprocess.run(["amtool", "check-config", str(f)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_matcher_list_parsing_like_alertmanager():
    ms = parse_matchers('{foo = "bar", dings != "bums", }')
    assert [(m.name, m.op, m.value) for m in ms] == [("foo", "=", "bar"), ("dings", "!=", "bums")]
    [q] = parse_matchers(r'{quote="She said: \"Hi, ladies!\""}')
    assert q.value == 'She said: "Hi, ladies!"'
    assert parse_matcher(r'x="a\nb"').value == "a\nb" and parse_matcher(r'x="a\qb"').value == r"a\qb"


def test_two_sided_alerts_do_not_inhibit_each_other():
    """Alertmanager's docs: an alert that matches both the source and the target side of a rule cannot be
    inhibited by alerts that match both sides as well (including itself)."""
    rule = InhibitRule(parse_matchers('severity=~"warning|critical"'), parse_matchers('severity=~"warning|critical"'),
                       ("cluster",))
    a = {"alertname": "a", "severity": "critical", "cluster": "c1"}
    b = {"alertname": "b", "severity": "warning", "cluster": "c1"}
    assert rule.inhibits(a, [a, b]) is None and rule.inhibits(b, [a, b]) is None
    # a source-only alert still inhibits a two-sided one
    rule = InhibitRule(parse_matchers('severity=~"critical|warning"'), parse_matchers('severity="warning"'),
                       ("cluster",))
    src_only = {"alertname": "down", "severity": "critical", "cluster": "c1"}
    assert rule.inhibits(b, [src_only, b]) == src_only
