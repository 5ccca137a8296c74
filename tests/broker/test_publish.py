"""A confirmed publish is a delivered one: a message no queue is bound for comes back as an error."""
from __future__ import annotations

import pytest

from harewatch.broker.publish import ConfirmedPublisher, OutMessage
from harewatch.errors import UnroutableMessage
from tests.conftest import get_all

pytestmark = pytest.mark.broker


def test_anomaly_with_alerts_route_unbound_raises_then_goes_out_once_bound(declared, pika_channel):
    ch = pika_channel
    ch.queue_unbind("alerts.route", "anomalies", "#")
    pub = ConfirmedPublisher(declared)
    event = OutMessage("anomalies", "payments.spike.critical", b'{"type": "spike"}')
    with pytest.raises(UnroutableMessage,
                       match="2 of 2 messages came back unrouted: no queue is bound to exchange 'anomalies'"):
        pub.publish([OutMessage("anomalies", "payments.spike.warning", b"{}"), event])
    ch.queue_bind("alerts.route", "anomalies", "#")
    pub.publish([event])        # the caller publishes the batch again, on a new channel
    pub.close()
    got = get_all(ch, "alerts.route", expect=1)
    assert [(m.routing_key, body) for m, _, body in got] == [("payments.spike.critical", b'{"type": "spike"}')]


def test_routed_batch_is_confirmed_with_nothing_returned(declared, pika_channel):
    pub = ConfirmedPublisher(declared)
    pub.publish([OutMessage("anomalies", f"payments.spike.{i}", b"{}") for i in range(50)])
    pub.publish([OutMessage("readings", "no_such_metric.host", b"{}")])   # the alternate exchange routes it
    pub.close()
    assert len(get_all(pika_channel, "alerts.route", expect=50)) == 50
    assert len(get_all(pika_channel, "detect.default", expect=1)) == 1
