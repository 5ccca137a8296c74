"""The ``harewatch.notify`` Celery task: render, send, and on failure retry with the delay held by the broker.

A transient failure republishes the task (same id) to the ``notify.retry.<tier>``
exchange whose queue holds it for the backoff (exponential, with jitter,
at least the endpoint's Retry-After) and then dead-letters it back to
``alerts`` with its original routing key: a retry in flight survives a
worker SIGKILL and a broker restart.  A permanent failure, or the last
attempt, publishes it to ``notify.dlx`` (-> ``notify.<channel>.dlq``) with the
reason, attempts, last error, first-seen time and receiver in headers.
Publishes are confirmed before the task returns, and the task acks late.
"""
from __future__ import annotations

from celery import shared_task

import logging
import random
import time
from typing import Any, Mapping

from harewatch.errors import InvalidInput, PermanentError, TransientError
from harewatch.messages import Notification
from harewatch.times import iso
from harewatch.broker.topology import RETRY_TIERS
from harewatch.workers import runtime
from harewatch.workers.notify import channels, render

log = logging.getLogger("harewatch.notify")
DEFAULT_MAX_ATTEMPTS = 8
BASE_DELAY = 2.0
MAX_DELAY = 1800.0

# Alertmanager's global settings that fill in integration settings
_GLOBALS = {
    "email": {"smtp_smarthost": "smarthost", "smtp_from": "from", "smtp_hello": "hello",
              "smtp_auth_username": "auth_username", "smtp_auth_password": "auth_password",
              "smtp_require_tls": "require_tls"},
    "slack": {"slack_api_url": "api_url"},
    "pagerduty": {"pagerduty_url": "url"},
}


def backoff(attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
    """Seconds to wait before attempt ``attempt + 1``: exponential with +-20% jitter, >= Retry-After."""
    r = rng or random
    d = min(MAX_DELAY, BASE_DELAY * 2 ** (attempt - 1)) * r.uniform(0.8, 1.2)
    return max(d, retry_after or 0.0)


def tier_for(delay: float) -> int:
    """The retry queue that holds a message for ``delay``: the shortest whose TTL covers it.

    Messages carry no TTL of their own: within one queue every message then
    expires in the order it arrived, so a long wait never holds up a short one.
    """
    for t in RETRY_TIERS:
        if t >= delay:
            return t
    return RETRY_TIERS[-1]


def integration_settings(note: Notification) -> tuple[str, dict[str, Any]]:
    rc = runtime.config().routing
    rec = rc.receivers.get(note.receiver)
    idx = note.integration
    if rec is None or idx >= len(rec.integrations):
        raise PermanentError(f"receiver {note.receiver!r} integration {idx} is not in the config any more")
    integ = rec.integrations[idx]
    merged: dict[str, Any] = {}
    for gkey, key in _GLOBALS.get(integ.channel, {}).items():
        if gkey in rc.global_:
            merged[key] = rc.global_[gkey]
    merged.update(integ.settings)
    if rc.global_.get("external_url"):
        merged.setdefault("external_url", rc.global_["external_url"])
    return integ.channel, merged


def links(settings: Mapping[str, Any], note: Notification) -> dict[str, str]:
    out = {str(k): str(v) for k, v in (settings.get("links") or {}).items()}
    for a in note.alerts:
        for key in ("runbook_url", "dashboard_url"):
            if a.labels.get(key):
                out.setdefault(key.removesuffix("_url"), a.labels[key])
    mgmt = runtime.settings().management_url
    from harewatch.broker.connection import redact_url
    base = redact_url(mgmt).split("@")[-1]
    base = base if base.startswith("http") else "http://" + base
    out.setdefault("RabbitMQ queues", f"{base.rstrip('/')}/#/queues")
    return out


@shared_task(name="harewatch.notify", bind=True, acks_late=True, ignore_result=True)
def notify(self: Any, notification: dict[str, Any], attempt: int = 1, first_seen: float | None = None,
           last_error: str = "") -> str:
    """Send one notification through one receiver integration.

    ``notification`` is the wire form (:meth:`Notification.to_dict`); it is read
    once into a :class:`Notification` and forwarded unchanged on retry or to the DLQ."""
    first_seen = first_seen or time.time()
    routing_key = (self.request.delivery_info or {}).get("routing_key") or ""
    from harewatch.workers import metrics
    try:
        note = Notification.from_dict(notification)
    except InvalidInput as exc:
        _dead_letter(self, notification, None, "?", routing_key, "permanent", attempt, first_seen, str(exc))
        return "dead-lettered: not a notification"
    channel = note.channel or "?"
    try:
        channel, settings = integration_settings(note)
        dirs = tuple(d for d in (runtime.settings().templates_dir, settings.get("templates_dir")) if d)
        ctx = render.context(note, settings, links(settings, note), with_chart=channel == "email")
        ctx["_dirs"] = dirs
        result = channels.SENDERS[channel](note, settings, ctx)
    except TransientError as exc:
        if attempt >= int((locals().get("settings") or {}).get("max_attempts", DEFAULT_MAX_ATTEMPTS)):
            _dead_letter(self, notification, note, channel, routing_key, "exhausted", attempt, first_seen, str(exc))
            return "dead-lettered: attempts exhausted"
        delay = backoff(attempt, exc.retry_after)
        tier = tier_for(delay)
        names = runtime.names()
        self.apply_async(kwargs={"notification": notification, "attempt": attempt + 1, "first_seen": first_seen,
                                 "last_error": str(exc)[:500]},
                         task_id=self.request.id, exchange=names.retry_exchange(tier), routing_key=routing_key,
                         headers={"x-harewatch-attempt": attempt + 1, "x-harewatch-last-error": str(exc)[:500]})
        metrics.notification(channel, "retried")
        log.warning("notification %s via %s failed (attempt %d): %s; retry in %ds", note.id, channel, attempt, exc,
                    tier)
        return f"retry in {tier}s"
    except PermanentError as exc:
        _dead_letter(self, notification, note, channel, routing_key, "permanent", attempt, first_seen, str(exc))
        return "dead-lettered: permanent failure"
    except Exception as exc:  # noqa: BLE001 - a bug must dead-letter the notification, not crash the worker
        log.exception("notification %s failed unexpectedly", note.id)
        _dead_letter(self, notification, note, channel, routing_key, "internal", attempt, first_seen, repr(exc))
        return "dead-lettered: internal error"
    metrics.notification(channel, "sent")
    stamps = [a.anomaly.ts for a in note.alerts if a.anomaly is not None]
    if stamps and time.time() - min(stamps) < 86400:
        metrics.default().notify_latency.labels(channel).observe(max(0.0, time.time() - min(stamps)))
    log.info("notification %s via %s to %s: %s (attempt %d)", note.id, channel, note.receiver, result, attempt)
    return result


def _dead_letter(task: Any, raw: Any, note: Notification | None, channel: str, routing_key: str, reason: str,
                 attempt: int, first_seen: float, error: str) -> None:
    """Forward the notification as it came (``raw``) to its channel's DLQ, with the reason in headers."""
    from harewatch.workers import metrics
    names = runtime.names()
    if note is not None:
        summary = (f"{note.status} {len(note.alerts)} alert(s): " +
                   ", ".join(f"{a.labels.get('alertname')} {a.labels.get('type')}" for a in note.alerts[:3]))[:300]
        receiver, note_id = note.receiver, note.id
        if channel == "?":
            channel = note.channel or "webhook"
    else:
        summary, receiver, note_id = "not a harewatch notification", "?", "?"
        channel = channel if channel != "?" else "webhook"
    task.apply_async(kwargs={"notification": raw, "attempt": attempt, "first_seen": first_seen,
                             "last_error": error[:500]},
                     task_id=task.request.id, exchange=names.notify_dlx, routing_key=names.notify_queue(channel),
                     headers={"x-harewatch-reason": reason, "x-harewatch-attempts": attempt,
                              "x-harewatch-last-error": error[:1000], "x-harewatch-first-seen": iso(first_seen),
                              "x-harewatch-receiver": str(receiver), "x-harewatch-summary": summary,
                              "x-original-routing-key": routing_key})
    metrics.notification(channel, "dead_lettered")
    log.error("notification %s via %s dead-lettered (%s after %d attempts): %s", note_id, channel, reason,
              attempt, error)
