"""Confirmed publishes of what detection produces: anomaly events to ``anomalies``, rejected readings
to ``readings.invalid`` (with the reason in headers), on a connection of their own."""
from __future__ import annotations

from typing import Any

from kombu import Producer

from harewatch.messages import AnomalyEvent
from harewatch.workers import runtime
from harewatch.workers.engine import Invalid


class EventPublisher:
    """Confirmed publishes of anomaly events and invalid readings on a connection of its own."""

    def __init__(self, celery_app: Any) -> None:
        self.app = celery_app
        self.conn = celery_app.connection_for_write()
        self.names = runtime.names()
        self.producer: Producer | None = None

    def _producer(self) -> Producer:
        if self.producer is None:
            self.conn.ensure_connection(max_retries=3)
            self.producer = Producer(self.conn.channel())
        return self.producer

    def publish(self, body: bytes | str, exchange: str, routing_key: str, **props: Any) -> None:
        try:
            self._producer().publish(body, exchange=exchange, routing_key=routing_key, delivery_mode=2,
                                     serializer=None, **props)
        except Exception:
            self.close()
            raise

    def events(self, events: list[AnomalyEvent]) -> None:
        for ev in events:
            self.publish(ev.to_json(), self.names.anomalies, ev.routing_key(), content_type="application/json",
                         content_encoding="utf-8", message_id=ev.id, headers={"x-harewatch-schema": ev.schema})

    def invalid(self, items: list[Invalid]) -> None:
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
            self.publish(m.body, self.names.readings_invalid, m.routing_key,
                         content_type=m.content_type or "application/octet-stream", content_encoding="binary",
                         headers=headers)

    def close(self) -> None:
        try:
            self.conn.release()
        except Exception:  # noqa: BLE001
            pass
        self.conn = self.app.connection_for_write()
        self.producer = None


def publish_events(app: Any, events: list[AnomalyEvent]) -> None:
    """Publish anomaly events (confirmed) on a short-lived connection of ``app``'s: for periodic tasks."""
    if not events:
        return
    pub = EventPublisher(app)
    try:
        pub.events(events)
    finally:
        pub.conn.release()
