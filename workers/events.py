"""What the workers publish, as messages: anomaly events to ``anomalies``, rejected readings to
``readings.invalid`` (with the reason in headers), and Celery task messages (refits, notifications);
published together with pipelined confirms by :class:`~harewatch.broker.publish.ConfirmedPublisher`."""
from __future__ import annotations

from typing import Any, Sequence

import orjson

from harewatch.broker.publish import ConfirmedPublisher, OutMessage
from harewatch.messages import AnomalyEvent
from harewatch.workers import runtime
from harewatch.workers.engine import Invalid


def event_messages(events: Sequence[AnomalyEvent]) -> list[OutMessage]:
    """Anomaly events for the ``anomalies`` exchange, routing key ``<team>.<type>.<severity>``."""
    names = runtime.names()
    return [OutMessage(names.anomalies, ev.routing_key(), ev.to_json().encode(),
                       {"content_type": "application/json", "content_encoding": "utf-8", "message_id": ev.id,
                        "headers": {"x-harewatch-schema": ev.schema}}) for ev in events]


def invalid_messages(items: Sequence[Invalid]) -> list[OutMessage]:
    """Rejected readings, body unchanged, for ``readings.invalid``; the reason, field and line in headers."""
    names = runtime.names()
    out = []
    for it in items:
        m, e = it.message, it.error
        headers = dict(m.headers or {})
        headers.update({"x-harewatch-reason": e.reason, "x-harewatch-error": str(e)[:1000],
                        "x-original-exchange": m.exchange, "x-original-routing-key": m.routing_key,
                        "x-harewatch-queue": m.queue})
        if e.line is not None:
            headers["x-harewatch-line"] = e.line
        if e.field:
            headers["x-harewatch-field"] = e.field
        out.append(OutMessage(names.readings_invalid, m.routing_key, m.body,
                              {"content_type": m.content_type or "application/octet-stream",
                               "content_encoding": "binary", "headers": headers}))
    return out


def task_message(app: Any, name: str, task_id: str, exchange: str, routing_key: str,
                 args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None, summary: str = "") -> OutMessage:
    """A Celery task message (protocol 2, JSON), as ``app.send_task`` would publish it, for a pipelined
    publisher. ``summary`` stands in for Celery's repr of the arguments, which costs milliseconds for a
    notification of some KB."""
    headers, properties, body, _ = app.amqp.as_task_v2(task_id, name, args=list(args), kwargs=kwargs or {},
                                                       argsrepr=summary or repr(list(args)),
                                                       kwargsrepr=summary or "{}")
    return OutMessage(exchange, routing_key, orjson.dumps(list(body)),
                      {**properties, "headers": headers, "content_type": "application/json",
                       "content_encoding": "utf-8", "delivery_mode": 2})


def publish_events(app: Any, events: Sequence[AnomalyEvent]) -> None:
    """Publish anomaly events (confirmed) on a short-lived connection: for periodic tasks."""
    if not events:
        return
    pub = ConfirmedPublisher(runtime.settings())
    try:
        pub.publish(event_messages(events))
    finally:
        pub.close()
