"""Channel senders: one function per channel, each sends one notification or raises.

Transient failures (timeouts, connection errors, 5xx, 408, 429 with its
Retry-After) raise :class:`TransientError`; everything a retry cannot fix
(other 4xx, bad address, bad settings) raises :class:`PermanentError`.
Every request carries the notification id so a redelivered notification is
recognisable (Idempotency-Key, Message-ID, PagerDuty dedup_key).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import smtplib
import ssl
import time
import urllib.parse
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Callable, Mapping

import requests

from harewatch.messages import Notification
from harewatch.errors import PermanentError, TransientError
from harewatch.workers.notify.render import render

TIMEOUT = 10.0
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
USER_AGENT = "harewatch/0.1"


def _retry_after(resp: requests.Response) -> float | None:
    v = resp.headers.get("Retry-After")
    if not v:
        return None
    try:
        return max(0.0, float(v))
    except ValueError:
        from email.utils import parsedate_to_datetime
        try:
            return max(0.0, parsedate_to_datetime(v).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def post(url: str, body: bytes, headers: Mapping[str, str], what: str) -> requests.Response:
    """POST with harewatch's error classification."""
    if not url or not urllib.parse.urlsplit(url).scheme.startswith("http"):
        raise PermanentError(f"{what}: bad URL {url!r}")
    try:
        resp = requests.post(url, data=body, headers={"User-Agent": USER_AGENT, **headers}, timeout=TIMEOUT)
    except requests.Timeout:
        raise TransientError(f"{what}: timed out after {TIMEOUT:.0f}s") from None
    except requests.ConnectionError as exc:
        raise TransientError(f"{what}: connection failed: {exc.__class__.__name__}") from None
    if resp.status_code == 429:
        raise TransientError(f"{what}: 429 rate limited", retry_after=_retry_after(resp))
    if resp.status_code >= 500 or resp.status_code == 408:
        raise TransientError(f"{what}: {resp.status_code} {resp.text[:200]}", retry_after=_retry_after(resp))
    if resp.status_code >= 400:
        raise PermanentError(f"{what}: {resp.status_code} {resp.text[:300]}")
    return resp


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=str).encode()


# -- webhook (Alertmanager webhook payload version 4) ----------------------------------
def webhook_payload(note: Notification, ctx: Mapping[str, Any], external_url: str = "") -> dict[str, Any]:
    alerts = []
    for a in ctx["alerts"]:
        an = a.get("anomaly") or {}
        alerts.append({
            "status": a["status"], "labels": a["labels"],
            "annotations": {"summary": f"{a['labels'].get('alertname')} {an.get('type', '')} on {a['where']}",
                            "description": f"value {a['value_text']}, expected {a['expected_text']} "
                                           f"(band {a['band_text']}), off by {a['off_text']}",
                            "value": a["value_text"], "expected": a["expected_text"]},
            "startsAt": a["startsAt"], "endsAt": a["endsAt"], "generatorURL": external_url,
            "fingerprint": a["fingerprint"], "anomaly": an})
    return {"version": "4", "groupKey": note.group_key, "truncatedAlerts": note.truncated_alerts,
            "status": note.status, "receiver": note.receiver, "groupLabels": dict(note.group_labels),
            "commonLabels": dict(note.common_labels), "commonAnnotations": {}, "externalURL": external_url,
            "alerts": alerts, "harewatch": {"notification_id": note.id, "version": note.version}}


def send_webhook(note: Notification, s: Mapping[str, Any], ctx: Mapping[str, Any]) -> str:
    body = _json(webhook_payload(note, ctx, s.get("external_url", "")))
    headers = {"Content-Type": "application/json", "Idempotency-Key": note.id, "X-Harewatch-Notification": note.id}
    secret = s.get("secret") or s.get("hmac_secret")
    if secret:
        sig = hmac.new(str(secret).encode(), body, hashlib.sha256).hexdigest()
        headers["X-Harewatch-Signature"] = f"sha256={sig}"
    post(s["url"], body, headers, "webhook")
    return "delivered"


# -- Slack (incoming webhook, Block Kit) ----------------------------------------------
def send_slack(note: Notification, s: Mapping[str, Any], ctx: Mapping[str, Any]) -> str:
    url = str(s.get("api_url") or s.get("webhook_url") or "")
    text = render("slack/message.json.j2", ctx, ctx.get("_dirs", ()))
    try:
        json.loads(text)
    except ValueError as exc:
        raise PermanentError(f"slack template did not produce JSON: {exc}") from None
    post(url, text.encode(), {"Content-Type": "application/json", "X-Harewatch-Notification": note.id}, "slack")
    return "delivered"


# -- PagerDuty Events API v2 ---------------------------------------------------------
def pagerduty_event(note: Notification, s: Mapping[str, Any], ctx: Mapping[str, Any]) -> dict[str, Any]:
    # one incident per alert group and receiver: stable across retries, repeats and resolution
    dedup = hashlib.sha256(f"{note.receiver}|{note.group_key}".encode()).hexdigest()[:32]
    firing = note.status == "firing"
    sev = {"critical": "critical", "warning": "warning", "info": "info"}.get(
        note.common_labels.get("severity", "warning"), "error")
    ev: dict[str, Any] = {"routing_key": s.get("routing_key") or s.get("service_key"),
                          "event_action": "trigger" if firing else "resolve", "dedup_key": dedup}
    if firing:
        summary = render("pagerduty/summary.txt.j2", ctx, ctx.get("_dirs", ())).strip()[:1024]
        first = ctx["alerts"][0] if ctx["alerts"] else {"labels": {}, "anomaly": {}}
        ev["payload"] = {"summary": summary, "source": first["labels"].get("host") or first["labels"].get("instance")
                         or "harewatch", "severity": sev, "timestamp": note.created,
                         "component": first["labels"].get("service") or first["labels"].get("metric"),
                         "group": note.common_labels.get("team"),
                         "class": first["anomaly"].get("type"),
                         "custom_details": {"firing": note.firing, "alerts": [
                             {"labels": a["labels"], "value": a["value_text"], "expected": a["expected_text"],
                              "band": a["band_text"], "since": a["startsAt"]} for a in ctx["alerts"][:20]]}}
        ev["links"] = [{"href": u, "text": n} for n, u in ctx.get("links", {}).items()]
    return ev


def send_pagerduty(note: Notification, s: Mapping[str, Any], ctx: Mapping[str, Any]) -> str:
    ev = pagerduty_event(note, s, ctx)
    if not ev["routing_key"]:
        raise PermanentError("pagerduty: no routing_key")
    post(s.get("url") or PAGERDUTY_URL, _json(ev), {"Content-Type": "application/json"}, "pagerduty")
    return f"{ev['event_action']} {ev['dedup_key']}"


# -- Microsoft Teams -----------------------------------------------------------------
def send_msteams(note: Notification, s: Mapping[str, Any], ctx: Mapping[str, Any]) -> str:
    text = render("msteams/message.json.j2", ctx, ctx.get("_dirs", ()))
    post(s["webhook_url"], text.encode(), {"Content-Type": "application/json"}, "msteams")
    return "delivered"


# -- DingTalk and WeCom robots ----------------------------------------------------------
def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's robot signature: base64(HMAC-SHA256(secret, "<timestamp>\\n<secret>")), URL-encoded."""
    mac = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(mac))


def _robot_result(resp: requests.Response, what: str) -> None:
    try:
        doc = resp.json()
    except ValueError:
        return
    code = doc.get("errcode", 0)
    if code in (130101, 45009, -1):     # rate limited / system busy
        raise TransientError(f"{what}: errcode {code} {doc.get('errmsg', '')}")
    if code:
        raise PermanentError(f"{what}: errcode {code} {doc.get('errmsg', '')}")


def send_dingtalk(note: Notification, s: Mapping[str, Any], ctx: Mapping[str, Any]) -> str:
    url = s["url"]
    if s.get("secret"):
        ts = int(time.time() * 1000)
        url += ("&" if "?" in url else "?") + f"timestamp={ts}&sign={dingtalk_sign(str(s['secret']), ts)}"
    text = render("dingtalk/message.md.j2", ctx, ctx.get("_dirs", ()))
    body = {"msgtype": "markdown", "markdown": {"title": ctx["title"][:64], "text": text}}
    _robot_result(post(url, _json(body), {"Content-Type": "application/json"}, "dingtalk"), "dingtalk")
    return "delivered"


def send_wecom(note: Notification, s: Mapping[str, Any], ctx: Mapping[str, Any]) -> str:
    text = render("wecom/message.md.j2", ctx, ctx.get("_dirs", ()))
    body = {"msgtype": "markdown", "markdown": {"content": text[:4000]}}
    _robot_result(post(s["url"], _json(body), {"Content-Type": "application/json"}, "wecom"), "wecom")
    return "delivered"


# -- email ----------------------------------------------------------------------------
def email_message(note: Notification, s: Mapping[str, Any], ctx: Mapping[str, Any]) -> EmailMessage:
    dirs = ctx.get("_dirs", ())
    msg = EmailMessage()
    msg["Subject"] = render("email/subject.txt.j2", ctx, dirs).strip()
    msg["From"] = s.get("from") or "harewatch@localhost"
    msg["To"] = s["to"]
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = f"<{note.id}@harewatch>"       # the same on every retry
    msg["X-Harewatch-Notification"] = note.id
    msg.set_content(render("email/body.txt.j2", ctx, dirs))
    msg.add_alternative(render("email/body.html.j2", ctx, dirs), subtype="html")
    html: Any = msg.get_payload()[-1]  # type: ignore[index]
    for a in ctx["alerts"]:
        if a.get("chart"):
            html.add_related(a["chart"], maintype="image", subtype="png", cid=f"<{a['chart_cid']}>",
                             filename=f"{a['chart_cid'].split('@')[0]}.png")
    return msg


def send_email(note: Notification, s: Mapping[str, Any], ctx: Mapping[str, Any]) -> str:
    msg = email_message(note, s, ctx)
    host_port = s.get("smarthost") or "127.0.0.1:25"
    host, _, port_s = str(host_port).rpartition(":")
    host, port = (host or host_port), int(port_s or 25)
    use_ssl = s.get("tls") == "ssl" or port == 465
    require_tls = s.get("require_tls", True) and not use_ssl
    tls_ctx = ssl.create_default_context()
    if s.get("tls_insecure_skip_verify"):
        tls_ctx.check_hostname = False
        tls_ctx.verify_mode = ssl.CERT_NONE
    try:
        cls: Callable[..., smtplib.SMTP] = smtplib.SMTP_SSL if use_ssl else smtplib.SMTP
        kw: dict[str, Any] = {"context": tls_ctx} if use_ssl else {}
        with cls(host, port, timeout=TIMEOUT, local_hostname=s.get("hello") or None, **kw) as smtp:
            smtp.ehlo()
            if require_tls:
                if not smtp.has_extn("starttls"):
                    raise PermanentError(f"email: {host}:{port} does not offer STARTTLS (set require_tls: false)")
                smtp.starttls(context=tls_ctx)
                smtp.ehlo()
            if s.get("auth_username"):
                smtp.login(s["auth_username"], s.get("auth_password", ""))
            refused = smtp.send_message(msg)
            if refused:
                raise PermanentError(f"email: recipients refused: {', '.join(refused)}")
    except smtplib.SMTPAuthenticationError as exc:
        raise PermanentError(f"email: authentication failed ({exc.smtp_code})") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise PermanentError(f"email: recipients refused: {', '.join(exc.recipients)}") from None
    except smtplib.SMTPResponseException as exc:
        err = TransientError if 400 <= exc.smtp_code < 500 else PermanentError
        raise err(f"email: {exc.smtp_code} {exc.smtp_error!r}") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise TransientError(f"email: {host}:{port}: {exc.__class__.__name__}: {exc}") from None
    return "delivered"


def send_console(note: Notification, s: Mapping[str, Any], ctx: Mapping[str, Any]) -> str:
    print(render("console/message.txt.j2", ctx, ctx.get("_dirs", ())), flush=True)
    return "printed"


SENDERS: dict[str, Callable[[Notification, Mapping[str, Any], Mapping[str, Any]], str]] = {
    "webhook": send_webhook, "slack": send_slack, "pagerduty": send_pagerduty, "msteams": send_msteams,
    "dingtalk": send_dingtalk, "wecom": send_wecom, "email": send_email, "console": send_console,
}
