"""Route matching against Alertmanager's own semantics (amtool, when installed), the routes CLI,
and routing config errors."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from harewatch.errors import ConfigError
from harewatch.routing.config import parse_config
from harewatch.routing.loader import load_full_config
from harewatch.routing.tree import parse_routing
from tests.conftest import ROOT, make_settings, run_cli

AM = ROOT / "tests" / "routing" / "data" / "alertmanager.yml"

CASES = [
    ({"severity": "critical", "service": "db", "env": "prod"}, ["pager", "storage-prod"]),
    ({"severity": "critical"}, ["pager", "not-pay"]),
    ({"service": "cache", "env": "dev", "region": "eu-west"}, ["storage-eu"]),
    ({"service": "cache", "env": "dev", "region": "us-east"}, ["storage"]),
    ({"service": "dbx"}, ["not-pay"]),                      # regex anchored: dbx is not db
    ({"team": "pay"}, ["pay-exact"]),
    ({"team": "payments"}, ["pay-any", "pay-last"]),        # continue chain
    ({"team": "payments", "owner": "bob"}, ["pay-last"]),   # absent label = empty string
    ({"team": "search"}, ["fallback"]),
    ({}, ["not-pay"]),
    ({"severity": "critical", "team": "payments"}, ["pager", "pay-any", "pay-last"]),
]


@pytest.mark.parametrize("labels,expected", CASES)
def test_matching_rules(labels, expected):
    rc = load_full_config(AM).routing
    assert [r.receiver for r in rc.match(labels)] == expected


@pytest.mark.parametrize("labels,expected", CASES)
def test_same_answer_as_amtool(labels, expected):
    if not shutil.which("amtool"):
        pytest.skip("amtool (prometheus-alertmanager) not installed")
    args = [f"{k}={v}" for k, v in labels.items()] or ["x="]
    proc = subprocess.run(["amtool", "config", "routes", "test", f"--config.file={AM}", *args],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().split(",") == expected


def test_inheritance_of_receiver_and_timings():
    rc = load_full_config(AM).routing
    [pager, prod] = rc.match({"severity": "critical", "service": "db", "env": "prod"})
    assert pager.timings() == {"receiver": "pager", "group_by": ["alertname", "cluster"], "group_wait": "5s",
                               "group_interval": "2m", "repeat_interval": "3h"}
    assert prod.timings() == {"receiver": "storage-prod", "group_by": "...", "group_wait": "20s",
                              "group_interval": "2m", "repeat_interval": "1h"}
    assert prod.group_key({"a": "1", "b": "2"}) == '{a="1",b="2"}'


def test_cli_json_and_text(tmp_path):
    s = make_settings("unused")
    proc = run_cli(s, "routes", "test", "--config", str(AM), "--json", "severity=critical", "team=payments")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [o["receiver"] for o in out] == ["pager", "pay-any", "pay-last"]
    assert set(out[0]) == {"receiver", "group_by", "group_wait", "group_interval", "repeat_interval"}
    text = run_cli(s, "routes", "test", "--config", str(AM), "service=db", "env=prod").stdout
    assert text.startswith("storage-prod  group_by=[...] group_wait=20s group_interval=2m repeat_interval=1h")


def test_cli_firing_applies_inhibition(tmp_path):
    s = make_settings("unused")
    firing = tmp_path / "firing.json"
    firing.write_text(json.dumps([{"labels": {"alertname": "cpu", "cluster": "c1", "severity": "critical"},
                                   "status": "firing"},
                                  {"labels": {"alertname": "mem", "cluster": "c1", "severity": "critical"},
                                   "status": "resolved"}]))
    proc = run_cli(s, "routes", "test", "--config", str(AM), "--json", "--firing", str(firing),
                   "alertname=cpu", "cluster=c1", "severity=warning")
    assert json.loads(proc.stdout) == {"inhibited": True, "by": {"alertname": "cpu", "cluster": "c1",
                                                                 "severity": "critical"}}
    # different cluster, or only a resolved source: not inhibited
    proc = run_cli(s, "routes", "test", "--config", str(AM), "--json", "--firing", str(firing),
                   "alertname=mem", "cluster=c1", "severity=warning")
    assert [o["receiver"] for o in json.loads(proc.stdout)] == ["not-pay"]


def test_shorthand_expands_into_the_tree():
    cfg = load_full_config(ROOT / "routing" / "routes.yaml")
    rc = cfg.routing
    got = [r.receiver for r in rc.match({"team": "payments", "severity": "critical", "alertname": "orders_per_min"})]
    assert got == ["payments-pagerduty", "payments-slack", "payments-webhook"]
    assert [r.receiver for r in rc.match({"team": "payments", "severity": "warning"})] == \
        ["payments-slack", "payments-webhook"]
    assert [r.receiver for r in rc.match({"team": "unowned"})] == ["default"]
    slack = rc.receivers["payments-slack"].integrations[0]
    assert slack.channel == "slack" and slack.settings["channel"] == "#payments-alerts" and slack.settings["api_url"]
    assert rc.match({"team": "payments"})[0].group_wait == 10


def cfg_error(text: str, env=None) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        cfg = parse_config(text, "r.yaml", env=env or {})
        parse_routing(cfg.raw, cfg.path)
    return exc.value


def test_config_errors_name_line_and_field():
    e = cfg_error("route:\n  receiver: a\n  routes:\n    - receiver: nope\nreceivers:\n  - name: a\n")
    assert (e.line, e.field) == (4, "route.routes[0].receiver") and 'undefined receiver "nope" used in route' in str(e)
    e = cfg_error("route:\n  receiver: a\n  routes:\n    - matchers: ['x=~\"(\"']\nreceivers: [{name: a}]\n")
    assert e.field == "route.routes[0].matchers[0]" and "error parsing regexp" in str(e) and e.line == 4
    e = cfg_error("route:\n  receiver: a\n  group_wait: 5 minutes\nreceivers: [{name: a}]\n")
    assert (e.line, e.field) == (3, "route.group_wait")
    e = cfg_error("receivers:\n  - name: a\n    slack_configs:\n      - api_url: ${SLACK_URL}\nroute: {receiver: a}\n")
    assert "SLACK_URL" in str(e) and e.line == 4
    e = cfg_error("receivers:\n  - name: a\n    webhook_configs:\n      - {send_resolved: true}\nroute: {receiver: a}\n")
    assert "missing url" in str(e) and e.field == "receivers[0].webhook_configs[0]"


def test_bare_alertmanager_config_and_unsupported_integrations(tmp_path):
    f = tmp_path / "am.yml"
    f.write_text("route: {receiver: ops}\nreceivers:\n  - name: ops\n    opsgenie_configs: [{api_key: x}]\n"
                 "  - name: silent\n")
    s = make_settings("unused")
    proc = run_cli(s, "routes", "check", "--config", str(f))
    assert proc.returncode == 0 and "2 receivers" in proc.stdout and "opsgenie_configs" in proc.stderr
    bad = tmp_path / "bad.yml"
    bad.write_text("route: {receiver: nobody}\nreceivers: [{name: ops}]\n")
    proc = run_cli(s, "routes", "check", "--config", str(bad))
    assert proc.returncode == 1 and 'undefined receiver "nobody" used in route' in proc.stderr
    proc = run_cli(s, "routes", "test", "--config", str(bad), "a=b")
    assert proc.returncode != 0 and "bad.yml:1" in proc.stderr


def test_time_intervals_mute_and_activate_routes():
    from datetime import datetime, timezone
    cfg = parse_config("""
route:
  receiver: ops
  routes:
    - matchers: ['team="payments"']
      receiver: pay
      mute_time_intervals: [weekends]
    - matchers: ['team="search"']
      receiver: search
      active_time_intervals: [office]
receivers: [{name: ops}, {name: pay}, {name: search}]
time_intervals:
  - name: weekends
    time_intervals: [{weekdays: ['saturday:sunday']}]
  - name: office
    time_intervals: [{weekdays: ['monday:friday'], times: [{start_time: '09:00', end_time: '17:00'}]}]
""", "t.yaml", env={})
    rc = parse_routing(cfg.raw, cfg.path)
    [pay] = rc.match({"team": "payments"})
    [search] = rc.match({"team": "search"})
    sat_noon = datetime(2027, 1, 16, 12, 0, tzinfo=timezone.utc).timestamp()
    mon_noon = datetime(2027, 1, 18, 12, 0, tzinfo=timezone.utc).timestamp()
    mon_night = datetime(2027, 1, 18, 22, 0, tzinfo=timezone.utc).timestamp()
    assert rc.muted(pay, sat_noon) and not rc.muted(pay, mon_noon)
    assert not rc.muted(search, mon_noon) and rc.muted(search, mon_night) and rc.muted(search, sat_noon)
    e = cfg_error("route: {receiver: a, routes: [{receiver: a, mute_time_intervals: [nope]}]}\nreceivers: [{name: a}]\n")
    assert 'undefined time interval "nope" used in route' in str(e)
