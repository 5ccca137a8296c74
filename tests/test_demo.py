"""`harewatch demo --duration 60s`: simulated anomalies travel through RabbitMQ to the local webhook sink."""
from __future__ import annotations

import re
import socket
import uuid

import pytest

from tests.conftest import make_settings, run_cli
from harewatch.workers.store import StateStore

pytestmark = [pytest.mark.broker, pytest.mark.e2e]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_delivers_anomalies_to_the_webhook_sink(vhost):
    s = make_settings(vhost, prefix=f"demo{uuid.uuid4().hex[:4]}.")
    base = free_port()
    try:
        proc = run_cli(s, "demo", "--duration", "60s", "--series", "14", "--sink-port", str(free_port()),
                       "--smtp-port", str(free_port()), "--metrics-port", str(base), timeout=180)
    finally:
        StateStore(s.redis_url, s.prefix).clear()
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "where to look" in out and "/#/queues" in out and "notify.<channel>.dlq" in out
    webhook = [line for line in out.splitlines() if "delivered webhook: FIRING" in line]
    assert webhook, out[-3000:]
    assert re.search(r"value [-\d.]+ expected [-\d.]+", webhook[0])
    counters = dict(re.findall(r"(\w+)=([\d.]+)", out.split("metrics: ")[1].splitlines()[0]))
    assert float(counters["readings_consumed_total"]) > 10_000
    assert float(counters["anomalies_total"]) > 0 and float(counters["notifications_total"]) > 0
