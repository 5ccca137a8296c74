"""Replay from each kind of dead-letter queue goes back where the message came from."""
from __future__ import annotations

import json

import pika
import pytest

from harewatch.broker.dlq import DLQ
from tests.conftest import get_all

pytestmark = pytest.mark.broker


def dead_letter(ch, queue: str) -> None:
    """What a consumer does with a message it cannot read: reject it, so the broker dead-letters it."""
    for method, _, _ in ch.consume(queue, inactivity_timeout=10):
        assert method is not None, f"nothing in {queue}"
        ch.basic_reject(method.delivery_tag, requeue=False)
        break
    ch.cancel()


def test_replay_from_alerts_route_dlq_goes_back_to_anomalies(declared, pika_channel):
    ch = pika_channel
    ch.confirm_delivery()
    body = json.dumps({"metric": "cpu_util", "type": "spike"}).encode()
    ch.basic_publish("anomalies", "payments.spike.critical", body, pika.BasicProperties(delivery_mode=2))
    dead_letter(ch, "alerts.route")
    assert DLQ(declared).replay("alerts.route.dlq") == 1
    [(method, _, got)] = get_all(ch, "alerts.route", expect=1, timeout=10)
    assert got == body and method.routing_key == "payments.spike.critical"
    assert get_all(ch, "alerts.route.dlq", timeout=1) == []


def test_replay_from_a_notify_dlq_goes_back_to_alerts(declared, pika_channel):
    ch = pika_channel
    ch.confirm_delivery()
    note = [[], {"notification": {"id": "n1", "channel": "slack"}}, {}]
    ch.basic_publish("alerts", "slack.payments.spike.critical", json.dumps(note).encode(),
                     pika.BasicProperties(delivery_mode=2, content_type="application/json"))
    dead_letter(ch, "notify.slack")
    assert DLQ(declared).replay("notify.slack.dlq") == 1
    [(method, _, got)] = get_all(ch, "notify.slack", expect=1, timeout=10)
    assert method.routing_key == "slack.payments.spike.critical"
    assert json.loads(got)[1]["notification"]["id"] == "n1"
