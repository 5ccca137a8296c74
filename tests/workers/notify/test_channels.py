"""Rendering and every channel over real sockets: an SMTP server and HTTP servers standing in for
Slack, PagerDuty, Teams, DingTalk, WeCom and a webhook receiver."""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import urllib.parse

import pytest

from harewatch.errors import PermanentError, TransientError
from harewatch.messages import Notification
from harewatch.workers.notify import channels, render
from harewatch.workers.notify.chart import sparkline


def sample_notification(status: str = "firing", n: int = 1) -> dict:
    window = {"ts": [f"2027-01-15T07:{m:02d}:00Z" for m in range(30)],
              "observed": [40 + (m % 5) for m in range(29)] + [97.1],
              "expected": [41.0 + (m % 5) * 0.5 for m in range(30)]}
    alerts = []
    for i in range(n):
        alerts.append({"status": status, "fingerprint": f"fp{i}",
                       "labels": {"alertname": "cpu_util", "metric": "cpu_util", "type": "spike",
                                  "severity": "critical", "team": "payments", "host": f"web-0{i + 1}"},
                       "startsAt": "2027-01-15T07:29:00Z",
                       "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2027-01-15T07:40:00Z",
                       "events": 2,
                       "anomaly": {"metric": "cpu_util", "labels": {"host": f"web-0{i + 1}", "team": "payments"},
                                   "team": "payments", "series": f"s{i}", "severity": "critical",
                                   "ts": "2027-01-15T07:29:00Z", "type": "spike", "value": 97.1, "expected": 41.3,
                                   "lower": 30.2, "upper": 52.4, "score": 0.87, "confidence": "high",
                                   "window": window, "model": {"method": "stl", "periods": [86400]}}})
    return {"version": 1, "id": "3f1c1bd2-8c4e-4b8e-9d0f-0a1b2c3d4e5f", "receiver": "payments-slack",
            "channel": "slack", "integration": 0, "status": status, "group_key": '0.routes[0]:{alertname="cpu_util"}',
            "group_labels": {"alertname": "cpu_util", "team": "payments"},
            "common_labels": {"alertname": "cpu_util", "severity": "critical", "team": "payments"},
            "alerts": alerts, "truncated_alerts": 0, "firing": n if status == "firing" else 0,
            "resolved": 0 if status == "firing" else n, "created": "2027-01-15T07:30:00Z"}


def sample(status: str = "firing", n: int = 1) -> Notification:
    """The sample as the notifier reads it."""
    return Notification.from_dict(sample_notification(status, n))


def ctx_for(note, settings=None, chart=False):
    c = render.context(note, settings or {}, {"runbook": "https://runbooks.example/cpu",
                                              "RabbitMQ queues": "http://127.0.0.1:15672/#/queues"}, chart)
    c["_dirs"] = ()
    return c


def test_context_says_what_where_how_far_and_since():
    c = ctx_for(sample())
    a = c["alerts"][0]
    assert c["title"] == "cpu_util spike on host=web-01"
    assert (a["value_text"], a["expected_text"], a["band_text"]) == ("97.1", "41.3", "30.2 to 52.4")
    assert a["off_text"].startswith("+55.8, +135%") and "score 0.87" in a["off_text"]
    assert "stl" in a["model_text"] and "1d" in a["model_text"]
    assert a["sparkline"][-1] == "█" and len(a["sparkline"]) == 30
    text = render.render("email/body.txt.j2", c)
    for piece in ("FIRING", "host=web-01", "97.1", "expected 41.3", "30.2 to 52.4", "2027-01-15T07:29:00Z",
                  "(2 anomalies)", "runbook: https://runbooks.example/cpu"):
        assert piece in text


def test_html_is_autoescaped_and_chart_is_a_png():
    wire = sample_notification()
    wire["alerts"][0]["labels"]["host"] = "<script>alert(1)</script>"
    note = Notification.from_dict(wire)
    c = ctx_for(note, chart=True)
    html = render.render("email/body.html.j2", c)
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    png = c["alerts"][0]["chart"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 500
    assert sparkline([1, 2, None, 8]) == "▁▂ █"


def test_template_errors_are_clear(tmp_path):
    (tmp_path / "slack").mkdir()
    (tmp_path / "slack" / "message.json.j2").write_text("{{ broken ")
    from harewatch.errors import ConfigError
    with pytest.raises(ConfigError) as exc:
        render.check_templates((str(tmp_path),))
    assert "message.json.j2" in str(exc.value)
    with pytest.raises(PermanentError) as exc2:
        render.render("slack/message.json.j2", ctx_for(sample()), (str(tmp_path),))
    assert "slack/message.json.j2" in str(exc2.value)
    # the sandbox refuses what a template must not do
    (tmp_path / "slack" / "message.json.j2").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    render._envs.clear()
    with pytest.raises(PermanentError):
        render.render("slack/message.json.j2", ctx_for(sample()), (str(tmp_path),))
    render._envs.clear()


def test_user_template_overrides_builtin(tmp_path):
    (tmp_path / "console").mkdir()
    (tmp_path / "console" / "message.txt.j2").write_text("custom: {{ title }}")
    render._envs.clear()
    assert render.render("console/message.txt.j2", ctx_for(sample()), (str(tmp_path),)) == \
        "custom: cpu_util spike on host=web-01"
    render._envs.clear()


def test_webhook_is_alertmanager_v4_with_signature_and_idempotency(http_sink):
    note = sample()
    channels.send_webhook(note, {"url": http_sink.url + "/hook", "secret": "s3cret"}, ctx_for(note))
    [req] = http_sink.on("/hook")
    body = req.json()
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "payments-slack"
    assert body["groupLabels"] == {"alertname": "cpu_util", "team": "payments"}
    a = body["alerts"][0]
    assert a["labels"]["host"] == "web-01" and a["fingerprint"] == "fp0" and a["startsAt"] == "2027-01-15T07:29:00Z"
    assert "expected 41.3" in a["annotations"]["description"]
    assert req.headers["idempotency-key"] == note.id
    expected = hmac.new(b"s3cret", req.body, hashlib.sha256).hexdigest()
    assert req.headers["x-harewatch-signature"] == f"sha256={expected}"


def test_slack_block_kit(http_sink):
    note = sample(n=2)
    channels.send_slack(note, {"api_url": http_sink.url + "/slack", "channel": "#pay"}, ctx_for(note, {"channel": "#pay"}))
    body = http_sink.on("/slack")[0].json()
    assert body["channel"] == "#pay" and body["text"].startswith("[FIRING] 2 anomalies")
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds[:2] == ["header", "context"] and kinds.count("section") == 2 and kinds[-1] == "actions"
    assert "web-02" in json.dumps(body["blocks"]) and "97.1" in body["blocks"][2]["text"]["text"]


def test_pagerduty_trigger_and_resolve_share_dedup_key(http_sink):
    s = {"routing_key": "R0UT1NG", "url": http_sink.url + "/pd"}
    note = sample()
    channels.send_pagerduty(note, s, ctx_for(note))
    resolved = dataclasses.replace(sample("resolved"), id="another-id")
    channels.send_pagerduty(resolved, s, ctx_for(resolved))
    trig, res = [r.json() for r in http_sink.on("/pd")]
    assert trig["event_action"] == "trigger" and res["event_action"] == "resolve"
    assert trig["dedup_key"] == res["dedup_key"] and trig["routing_key"] == "R0UT1NG"
    assert trig["payload"]["severity"] == "critical" and "97.1 vs 41.3" in trig["payload"]["summary"]
    assert trig["payload"]["source"] == "web-01"


def test_msteams_dingtalk_wecom(http_sink):
    note = sample()
    channels.send_msteams(note, {"webhook_url": http_sink.url + "/teams"}, ctx_for(note))
    card = http_sink.on("/teams")[0].json()
    assert card["@type"] == "MessageCard" and card["sections"][0]["facts"][0]["value"] == "host=web-01"

    http_sink.respond("/ding", (200, '{"errcode":0,"errmsg":"ok"}'))
    channels.send_dingtalk(note, {"url": http_sink.url + "/ding?access_token=t", "secret": "SECabc"}, ctx_for(note))
    req = http_sink.on("/ding")[0]
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(req.path).query)
    ts = q["timestamp"][0]
    want = base64.b64encode(hmac.new(b"SECabc", f"{ts}\nSECabc".encode(), hashlib.sha256).digest()).decode()
    assert q["sign"][0] == want and q["access_token"] == ["t"]
    assert req.json()["msgtype"] == "markdown" and "97.1" in req.json()["markdown"]["text"]

    http_sink.respond("/ding", (200, '{"errcode":310000,"errmsg":"sign not match"}'))
    with pytest.raises(PermanentError):
        channels.send_dingtalk(note, {"url": http_sink.url + "/ding"}, ctx_for(note))
    channels.send_wecom(note, {"url": http_sink.url + "/wecom"}, ctx_for(note))
    assert "web-01" in http_sink.on("/wecom")[0].json()["markdown"]["content"]


def test_email_multipart_with_inline_chart_and_stable_message_id(smtp_sink):
    note = sample()
    s = {"to": "oncall@example.com", "from": "hw@example.com", "smarthost": f"127.0.0.1:{smtp_sink.port}",
         "require_tls": False}
    channels.send_email(note, s, ctx_for(note, chart=True))
    [msg] = smtp_sink.messages
    assert msg["Message-ID"] == f"<{note.id}@harewatch>" and msg["To"] == "oncall@example.com"
    assert msg["Subject"] == "[FIRING:1] cpu_util spike on host=web-01"
    parts = {p.get_content_type(): p for p in msg.walk()}
    assert {"text/plain", "text/html", "image/png"} <= set(parts)
    html = parts["text/html"].get_payload(decode=True).decode()
    cid = parts["image/png"]["Content-ID"].strip("<>")
    assert f"cid:{cid}" in html
    # STARTTLS required but not offered: a clear permanent error
    with pytest.raises(PermanentError) as exc:
        channels.send_email(note, {**s, "require_tls": True}, ctx_for(note))
    assert "STARTTLS" in str(exc.value)


@pytest.mark.parametrize("status,err", [(500, TransientError), (503, TransientError), (429, TransientError),
                                        (400, PermanentError), (404, PermanentError)])
def test_http_failures_are_classified(http_sink, status, err):
    http_sink.respond("/x", (status, "nope", {"Retry-After": "7"}))
    note = sample()
    with pytest.raises(err) as exc:
        channels.send_webhook(note, {"url": http_sink.url + "/x"}, ctx_for(note))
    if status == 429:
        assert exc.value.retry_after == 7.0


def test_connection_refused_is_transient():
    note = sample()
    with pytest.raises(TransientError):
        channels.send_webhook(note, {"url": "http://127.0.0.1:9/hook"}, ctx_for(note))
