"""Fixtures for worker tests: a declared vhost with its own name prefix, running Celery workers."""
from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pika
import pytest

from harewatch.settings import Settings
from harewatch.workers.store import StateStore
from tests.conftest import make_settings


@pytest.fixture
def config_settings(vhost: str, tmp_path: Path) -> Iterator[Callable[[str, str], Settings]]:
    """``config_settings(tag, yaml)``: settings on the test's vhost with that config and a fresh name prefix
    starting with ``tag``; the Redis keys under each prefix are removed afterwards."""
    made: list[Settings] = []

    def make(tag: str, config: str) -> Settings:
        cfg = tmp_path / f"{tag}.yaml"
        cfg.write_text(config)
        made.append(make_settings(vhost, prefix=f"{tag}{uuid.uuid4().hex[:6]}.", config=str(cfg)))
        return made[-1]

    yield make
    for s in made:
        StateStore(s.redis_url, s.prefix).clear()


@pytest.fixture
def watch_for() -> Iterator[Callable[[Settings], Callable[..., list[dict[str, Any]]]]]:
    """``watch_for(settings)``: a queue bound to that vhost's anomalies exchange; call the returned
    collector to get the events seen so far (it has ``rebind()`` for an exchange declared anew)."""
    import json
    conns: list[Any] = []

    def make(s: Settings) -> Callable[..., list[dict[str, Any]]]:
        conn = pika.BlockingConnection(pika.URLParameters(s.amqp_url))
        conns.append(conn)
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, s.prefix + "anomalies", "#")
        seen: list[dict[str, Any]] = []

        def rebind() -> None:
            """Bind again (after the exchange was deleted and declared anew)."""
            ch.queue_bind(q, s.prefix + "anomalies", "#")

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
        return collect

    yield make
    for c in conns:
        if c.is_open:
            c.close()


@pytest.fixture
def watch(wsettings: Settings, watch_for: Callable[[Settings], Callable[..., list[dict[str, Any]]]]
          ) -> Callable[..., list[dict[str, Any]]]:
    """The events on the test's anomalies exchange (see ``watch_for``)."""
    return watch_for(wsettings)
