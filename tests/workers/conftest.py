"""Fixtures for worker tests: a declared vhost with its own name prefix, running Celery workers."""
from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import pika
import pytest

from harewatch.settings import Settings


@pytest.fixture
def watch(wsettings: Settings) -> Iterator[Callable[..., list[dict[str, Any]]]]:
    """A queue bound to the anomalies exchange; call it to collect the events seen so far."""
    import json
    conn = pika.BlockingConnection(pika.URLParameters(wsettings.amqp_url))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, wsettings.prefix + "anomalies", "#")
    seen: list[dict[str, Any]] = []

    def rebind() -> None:
        """Bind again (after the exchange was deleted and declared anew)."""
        ch.queue_bind(q, wsettings.prefix + "anomalies", "#")

    def collect(until: Callable[[list[dict[str, Any]]], bool] = lambda s: False, timeout: float = 30.0
                ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, props, body = ch.basic_get(q, auto_ack=True)
            if method is None:
                if until(seen):
                    break
                conn.sleep(0.2)
                continue
            ev = json.loads(body)
            ev["_routing_key"] = method.routing_key
            seen.append(ev)
        return seen

    collect.rebind = rebind  # type: ignore[attr-defined]
    yield collect
    conn.close()
