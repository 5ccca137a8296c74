"""Alertmanager's v2 API served by `harewatch serve`, driven by the real amtool and compared with what the
router and `harewatch silence list` hold."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from typing import Any

import pytest
import requests

from tests.conftest import run_cli
from tests.serve.conftest import firing

AMTOOL = shutil.which("amtool")
needs_amtool = pytest.mark.skipif(AMTOOL is None, reason="amtool (prometheus-alertmanager) is not installed")


def amtool(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AMTOOL or "amtool", f"--alertmanager.url={url}", *args], capture_output=True, text=True,
                          timeout=30)


@needs_amtool
def test_amtool_queries_the_routers_alerts(ssettings: Any, serve: Any) -> None:
    router = firing(ssettings)
    srv = serve(ssettings)
    got = json.loads(amtool(srv.url, "alert", "query", "-o", "json").stdout)
    firing_now = {a.fingerprint: a for a in router.store.firing(time.time())}
    # amtool shows the active ones: the warning on web-01 is inhibited by the critical one
    assert sorted(a["fingerprint"] for a in got) == sorted(
        fp for fp, a in firing_now.items() if not (a.labels["host"] == "web-01" and a.labels["severity"] == "warning"))
    crit = next(a for a in got if a["labels"]["severity"] == "critical")
    assert crit["labels"] == dict(firing_now[crit["fingerprint"]].labels)
    assert [r["name"] for r in crit["receivers"]] == ["payments-pagerduty", "payments-slack", "payments-webhook"]
    assert crit["status"] == {"state": "active", "silencedBy": [], "inhibitedBy": []}
    assert crit["annotations"]["value"] == "97" and "expected" in crit["annotations"]["summary"]
    assert crit["generatorURL"].startswith(srv.url + "/series/")
    [warn] = json.loads(amtool(srv.url, "alert", "query", "--inhibited", "-o", "json").stdout)   # only those
    assert (warn["labels"]["host"], warn["labels"]["severity"]) == ("web-01", "warning")
    assert warn["status"]["state"] == "suppressed" and warn["status"]["inhibitedBy"] == [crit["fingerprint"]]
    # matchers filter on the server, as Alertmanager's
    only = json.loads(amtool(srv.url, "alert", "query", "-o", "json", "team=search").stdout)
    assert [a["labels"]["alertname"] for a in only] == ["http_latency_ms"]
    regex = json.loads(amtool(srv.url, "alert", "query", "-o", "json", 'alertname=~"cpu.*"', "--inhibited",
                              "--active").stdout)
    assert {a["labels"]["alertname"] for a in regex} == {"cpu_util"} and len(regex) == 2
    text = amtool(srv.url, "alert", "query").stdout
    assert "http_latency_ms" in text and "level_shift on http_latency_ms" in text


@needs_amtool
def test_amtool_silences_are_the_routers_silences(ssettings: Any, serve: Any) -> None:
    router = firing(ssettings)
    srv = serve(ssettings)
    added = amtool(srv.url, "silence", "add", "host=web-03", "--comment", "disk swap", "--author", "ops",
                   "--duration", "2h")
    assert added.returncode == 0, added.stderr
    sid = added.stdout.strip()
    # the same silence, field by field, in `harewatch silence list` and in the router
    [mine] = json.loads(run_cli(ssettings, "silence", "list", "--json").stdout)
    [theirs] = json.loads(amtool(srv.url, "silence", "query", "-o", "json").stdout)
    assert mine["id"] == theirs["id"] == sid
    assert mine["matchers"] == ['host="web-03"'] and theirs["matchers"] == [
        {"name": "host", "value": "web-03", "isRegex": False, "isEqual": True}]
    assert (mine["startsAt"], mine["endsAt"], mine["createdBy"], mine["comment"]) == \
        (theirs["startsAt"], theirs["endsAt"], theirs["createdBy"], theirs["comment"]) and theirs["createdBy"] == "ops"
    assert theirs["status"]["state"] == "active"
    assert [s.id for s in router.silences()] == [sid]
    # the router mutes it; amtool sees it silenced
    assert "http_latency_ms" not in amtool(srv.url, "alert", "query").stdout
    sil = json.loads(amtool(srv.url, "alert", "query", "--silenced", "-o", "json", "host=web-03").stdout)
    assert sil[0]["status"]["silencedBy"] == [sid]
    # a silence made with harewatch shows in amtool; amtool expires it
    other = run_cli(ssettings, "silence", "add", 'alertname=~"cpu.*"', "--for", "30m", "--comment", "load test").stdout.strip()
    listed = amtool(srv.url, "silence", "query").stdout
    assert other in listed and 'alertname=~"cpu.*"' in listed and "load test" in listed
    assert amtool(srv.url, "silence", "expire", sid).returncode == 0
    assert [s["id"] for s in json.loads(amtool(srv.url, "silence", "query", "-o", "json").stdout)] == [other]
    mine = next(s for s in json.loads(run_cli(ssettings, "silence", "list", "--all", "--json").stdout) if s["id"] == sid)
    [gone] = json.loads(amtool(srv.url, "silence", "query", "--expired", "-o", "json").stdout)
    assert gone["id"] == sid and gone["status"]["state"] == "expired" and gone["endsAt"] == mine["endsAt"]
    assert "http_latency_ms" in amtool(srv.url, "alert", "query").stdout


def test_status_receivers_groups_and_no_secret_shown(ssettings: Any, serve: Any) -> None:
    firing(ssettings)
    srv = serve(ssettings)
    status = requests.get(srv.url + "/api/v2/status", timeout=10).json()
    assert status["cluster"]["status"] == "disabled" and status["versionInfo"]["version"]
    original = status["config"]["original"]
    assert "route:" in original and "receivers:" in original and "<secret>" in original
    assert "hooks.slack.com" not in original and "http://" not in original and "https://" not in original
    names = [r["name"] for r in requests.get(srv.url + "/api/v2/receivers", timeout=10).json()]
    assert {"default", "payments-slack", "payments-pagerduty"} <= set(names)
    groups = requests.get(srv.url + "/api/v2/alerts/groups", timeout=10).json()
    pd = next(g for g in groups if g["receiver"]["name"] == "payments-pagerduty")
    assert pd["labels"] == {"alertname": "cpu_util", "team": "payments"}
    assert [a["labels"]["severity"] for a in pd["alerts"]] == ["critical"]
    assert requests.get(srv.url + "/api/v2/alerts", params={"filter": "team=~("}, timeout=10).status_code == 400
    bad = requests.post(srv.url + "/api/v2/silences", json={
        "matchers": [{"name": "host", "value": "x", "isRegex": False}], "startsAt": "2020-01-01T00:00:00Z",
        "endsAt": "2020-01-02T00:00:00Z", "createdBy": "me", "comment": "c"}, timeout=10)
    assert bad.status_code == 400 and "past" in bad.text
    empty = requests.post(srv.url + "/api/v2/silences", json={
        "matchers": [{"name": "host", "value": ".*", "isRegex": True}], "startsAt": "2020-01-01T00:00:00Z",
        "endsAt": "2099-01-02T00:00:00Z", "createdBy": "me", "comment": "c"}, timeout=10)
    assert empty.status_code == 400 and "empty string" in empty.text
    assert requests.get(srv.url + "/api/v2/silence/nope", timeout=10).status_code == 404


def post_silence(url: str, **kw: Any) -> requests.Response:
    now = time.time()
    return requests.post(url + "/api/v2/silences", json={
        "matchers": [{"name": "host", "value": "web-01", "isRegex": False}],
        "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600)), "createdBy": "t", "comment": "c"},
        timeout=10, **kw)


def test_writes_need_auth_beyond_loopback_and_none_when_read_only(ssettings: Any, serve: Any) -> None:
    open_wide = serve(ssettings, "--host", "0.0.0.0")
    assert "writes off" in open_wide.line
    refused = post_silence(open_wide.url.replace("0.0.0.0", "127.0.0.1"))
    assert refused.status_code == 403 and "--token" in refused.text
    token = "t0ken-" + "x" * 20
    guarded = serve(ssettings, "--host", "0.0.0.0", "--token", token)
    url = guarded.url.replace("0.0.0.0", "127.0.0.1")
    assert post_silence(url).status_code == 401
    assert post_silence(url, headers={"Authorization": "Bearer wrong-token-0000000"}).status_code == 401
    ok = post_silence(url, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.json()["silenceID"]
    assert requests.get(url + "/api/v2/silences", timeout=10).status_code == 200    # reads stay open
    basic = serve(ssettings, "--host", "0.0.0.0", "--basic-auth", "ops:s3cret")
    burl = basic.url.replace("0.0.0.0", "127.0.0.1")
    assert post_silence(burl, auth=("ops", "nope")).status_code == 401
    assert post_silence(burl, auth=("ops", "s3cret")).status_code == 200
    if AMTOOL:    # amtool with basic auth in the URL, as its docs say
        authed = burl.replace("http://", "http://ops:s3cret@")
        assert amtool(authed, "silence", "add", "host=web-09", "--comment", "c").returncode == 0
    # a form posted from elsewhere (no CSRF token of this server's pages) changes nothing
    local = serve(ssettings).url
    forged = requests.post(local + "/silences", data={"matchers": "host=web-01", "comment": "x"},
                           headers={"Origin": "http://evil.example"}, timeout=10)
    assert forged.status_code == 403 and "CSRF" in forged.text
    as_form = requests.post(local + "/api/v2/silences", data='{"matchers": []}',
                            headers={"Content-Type": "text/plain"}, timeout=10)   # what a cross-site form can send
    assert as_form.status_code == 415
    ro = serve(ssettings, "--read-only")
    assert "read-only" in ro.line
    assert post_silence(ro.url).status_code == 403
    assert requests.delete(ro.url + "/api/v2/silence/" + ok.json()["silenceID"], timeout=10).status_code == 403
