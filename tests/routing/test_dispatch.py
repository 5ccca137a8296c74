"""The router's alert state in real Redis, with a controllable clock: grouping, repeats,
resolution, silences, inhibition and restarts; then the router worker end to end."""
from __future__ import annotations

import json
import time
import uuid

import pika
import pytest

from harewatch.messages import AnomalyEvent
from harewatch.routing.config import parse_config
from harewatch.routing.tree import parse_routing
from harewatch.routing.dispatch import Router

CONFIG = """
global: {resolve_timeout: 5m}
route:
  receiver: hook
  group_by: [alertname, team]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - matchers: ['team="payments"']
      receiver: pay
receivers:
  - name: hook
    webhook_configs: [{url: "http://127.0.0.1:9/hook"}]
  - name: pay
    webhook_configs: [{url: "http://127.0.0.1:9/pay"}]
    slack_configs: [{api_url: "http://127.0.0.1:9/slack"}]
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [alertname, host]
"""
T0 = 1_800_000_000.0


def event(host="web-1", metric="cpu_util", team="payments", typ="spike", severity="warning"):
    return AnomalyEvent.from_dict({"metric": metric, "labels": {"host": host}, "team": team, "type": typ,
                                   "severity": severity, "ts": "2027-01-15T08:00:00Z", "value": 97.0,
                                   "expected": 40.0, "score": 0.7})


@pytest.fixture
def router(redis_db):
    cfg = parse_config(CONFIG, "test.yaml", env={})
    r = Router(parse_routing(cfg.raw, cfg.path), redis_db, prefix=f"rt{uuid.uuid4().hex[:6]}.")
    yield r
    r.clear()


class Outbox:
    """What the router sends, in the wire form the notifier receives."""

    def __init__(self):
        self.sent = []

    def __call__(self, notes):
        self.sent.extend((key, note.to_dict()) for key, note in notes)

    def take(self):
        out, self.sent = self.sent, []
        return out


def test_group_wait_batches_alerts(router):
    out = Outbox()
    router.receive(event("web-1"), now=T0)
    router.receive(event("web-2"), now=T0 + 10)
    assert router.tick(out, now=T0 + 29) == 0
    assert router.tick(out, now=T0 + 30) == 2          # pay has two integrations
    sent = out.take()
    keys = sorted(k for k, _ in sent)
    assert keys == ["slack.payments.spike.warning", "webhook.payments.spike.warning"]
    note = sent[0][1]
    assert note["status"] == "firing" and note["firing"] == 2
    assert {a["labels"]["host"] for a in note["alerts"]} == {"web-1", "web-2"}
    assert note["group_labels"] == {"alertname": "cpu_util", "team": "payments"}
    assert note["alerts"][0]["anomaly"]["expected"] == 40.0


def test_group_interval_and_repeat_interval(router):
    out = Outbox()
    router.receive(event("web-1"), now=T0)
    router.tick(out, now=T0 + 30)
    out.take()
    router.receive(event("web-3"), now=T0 + 60)            # joins the existing group
    for t in (T0 + 100, T0 + 200, T0 + 329):
        router.receive(event("web-1"), now=t)             # keeps the alerts firing
        router.receive(event("web-3"), now=t)
        assert router.tick(out, now=t) == 0
    assert router.tick(out, now=T0 + 330) == 2            # group_interval after the first flush
    assert {a["labels"]["host"] for a in out.take()[0][1]["alerts"]} == {"web-1", "web-3"}
    # nothing new: no resend until repeat_interval (4h)
    t = T0 + 330
    while t < T0 + 330 + 4 * 3600 - 300:
        t += 300
        router.receive(event("web-1"), now=t)
        router.receive(event("web-3"), now=t)
        router.tick(out, now=t)
    assert out.take() == []
    t += 600
    router.receive(event("web-1"), now=t)
    router.receive(event("web-3"), now=t)
    router.tick(out, now=t)
    assert len(out.take()) == 2


def test_resolved_notifications_only_where_asked(router):
    out = Outbox()
    router.receive(event("web-1"), now=T0)
    router.tick(out, now=T0 + 30)
    first = {k: n["id"] for k, n in out.take()}
    router.tick(out, now=T0 + 200)                      # not due
    assert out.take() == []
    router.tick(out, now=T0 + 330)                      # next flush; no event for resolve_timeout (5m)
    sent = out.take()
    assert [k.split(".")[0] for k, _ in sent] == ["webhook"]   # webhook send_resolved, slack not
    note = sent[0][1]
    assert note["status"] == "resolved" and note["alerts"][0]["status"] == "resolved"
    assert note["id"] != first["webhook.payments.spike.warning"]
    assert router.tick(out, now=T0 + 2000) == 0          # group gone


def test_a_resolved_event_ends_its_alert_before_the_resolve_timeout(router):
    out = Outbox()
    router.receive(event("web-1", typ="missing_data"), now=T0)
    router.tick(out, now=T0 + 30)
    assert [n["status"] for _, n in out.take()] == ["firing", "firing"]
    router.receive(event("web-1", typ="missing_data"), now=T0 + 200)      # firing until T0 + 500
    gone = AnomalyEvent.from_dict({**event("web-1", typ="missing_data").to_dict(), "status": "resolved", "id": ""})
    router.receive(gone, now=T0 + 250)
    assert router.tick(out, now=T0 + 330) == 1                            # the next flush reports it
    (key, note), = out.take()
    assert key.startswith("webhook.") and note["status"] == "resolved"
    assert note["alerts"][0]["endsAt"].startswith("2027-01-15T08:04:10")  # ended when the resolve came
    # a resolve for an alert that is not firing creates nothing
    router.receive(AnomalyEvent.from_dict({**event("web-9").to_dict(), "status": "resolved", "id": ""}), now=T0 + 400)
    assert router.tick(out, now=T0 + 2000) == 0 and out.take() == []
    with pytest.raises(Exception, match="status is firing or resolved"):
        AnomalyEvent.from_dict({**event("web-1").to_dict(), "status": "over"})


def test_silence_mutes_and_expiry_restores(router):
    out = Outbox()
    s = router.add_silence(['host="web-1"'], duration=3600, comment="maintenance", start=T0)
    router.receive(event("web-1"), now=T0)
    assert router.tick(out, now=T0 + 30) == 0
    assert [x.id for x in router.silences()] == [s.id]
    router.clock = lambda: T0 + 60
    assert router.expire_silence(s.id[:8])
    router.receive(event("web-1"), now=T0 + 100)
    assert router.tick(out, now=T0 + 350) == 2


def test_inhibition(router):
    out = Outbox()
    router.receive(event("web-1", severity="warning"), now=T0)
    router.receive(event("web-1", severity="critical"), now=T0)
    router.receive(event("web-2", severity="warning"), now=T0)
    router.tick(out, now=T0 + 30)
    hosts = sorted((a["labels"]["host"], a["labels"]["severity"]) for _, n in out.take() for a in n["alerts"])
    assert ("web-1", "warning") not in hosts
    assert ("web-1", "critical") in hosts and ("web-2", "warning") in hosts


def test_a_batch_notifies_exactly_as_its_events_one_by_one(router, redis_db):
    """Batched intake is an optimisation only: the same events, taken in one by one or as one batch
    (repeats of one alert among them), give the same notifications, ids, counts and content."""
    events = [event(f"web-{i % 7}", team=("payments", "search")[i % 2], severity=("warning", "critical")[i % 3 == 0],
                    typ=("spike", "dip")[i % 5 == 0]) for i in range(60)]
    batched = Router(router.rc, redis_db, prefix=f"rt{uuid.uuid4().hex[:6]}.")
    one, many = Outbox(), Outbox()
    try:
        for ev in events:
            router.receive(ev, now=T0)
        batched.receive_batch([(ev, ev.to_json()) for ev in events], now=T0)
        for t in (T0 + 30, T0 + 400, T0 + 2000):     # first flush, a change, resolution
            for ev in events[:10]:
                router.receive(ev, now=t - 1)
            batched.receive_batch([(ev, ev.to_json()) for ev in events[:10]], now=t - 1)
            assert router.tick(one, now=t) == batched.tick(many, now=t)
        assert len(one.sent) > 4
        assert sorted(one.take(), key=lambda kn: kn[1]["id"]) == sorted(many.take(), key=lambda kn: kn[1]["id"])
        assert router.store.events_total() == batched.store.events_total() == 90
    finally:
        batched.clear()


def test_restart_keeps_pending_groups_and_does_not_resend(router, redis_db):
    out = Outbox()
    prefix = router.store.ns.removesuffix("hw:rt:")
    router.receive(event("web-1"), now=T0)
    again = Router(router.rc, redis_db, prefix=prefix)     # the router restarted before group_wait
    assert again.tick(out, now=T0 + 30) == 2               # the pending group is flushed
    assert again.tick(out, now=T0 + 60) == 0
    again.receive(event("web-1"), now=T0 + 200)            # still firing
    third = Router(router.rc, redis_db, prefix=prefix)     # and restarted again
    assert third.tick(out, now=T0 + 330) == 0              # sent already: not again
    assert len(out.take()) == 2


@pytest.mark.broker
@pytest.mark.e2e
def test_router_worker_end_to_end(wsettings, worker_factory, pika_channel):
    """An anomaly on `anomalies` yields notification tasks in the right notify queues and nowhere else."""
    worker_factory(wsettings, "--route", "-Q", wsettings.prefix + "harewatch.tasks").start()
    ch = pika.BlockingConnection(pika.URLParameters(wsettings.amqp_url)).channel()
    ch.confirm_delivery()
    ev = {"id": "e1", "series": "abc", "metric": "orders_per_min", "labels": {"host": "web-1"}, "team": "payments",
          "type": "dip", "severity": "critical", "ts": "2027-01-15T08:00:00Z", "value": 3.0, "expected": 40.0,
          "lower": 30.0, "upper": 50.0, "score": 11.0}
    ch.basic_publish(wsettings.prefix + "anomalies", "payments.dip.critical", json.dumps(ev).encode(),
                     pika.BasicProperties(delivery_mode=2, content_type="application/json"))
    ch.basic_publish(wsettings.prefix + "anomalies", "payments.dip.critical", b"not json",
                     pika.BasicProperties(delivery_mode=2))
    from tests.conftest import get_all
    got = {}
    deadline = time.monotonic() + 40   # the payments team's group_wait is 10s
    while time.monotonic() < deadline and len(got) < 3:
        for chan in ("pagerduty", "slack", "webhook"):
            for m, props, body in get_all(ch, f"{wsettings.prefix}notify.{chan}", timeout=0.5):
                got[chan] = (m, props, body)
        time.sleep(0.5)
    assert set(got) == {"pagerduty", "slack", "webhook"}
    m, props, body = got["pagerduty"]
    assert m.routing_key == "pagerduty.payments.dip.critical"
    assert props.headers["task"] == "harewatch.notify"
    args, kwargs, _ = json.loads(body)
    note = kwargs["notification"]
    assert note["receiver"] == "payments-pagerduty" and note["alerts"][0]["labels"]["team"] == "payments"
    assert props.headers["id"] == note["id"]
    assert get_all(ch, f"{wsettings.prefix}notify.email", timeout=0.5) == []
    dead = get_all(ch, f"{wsettings.prefix}alerts.route.dlq", expect=1, timeout=10)
    assert [b for _, _, b in dead] == [b"not json"]


def test_a_deleted_channel_queue_holds_its_notifications_and_duplicates_none_elsewhere(router, declared, pika_channel):
    """A notify queue deleted under the router (until `topology declare` runs again): what could be routed
    goes out once, what came back is held and sent when the queue is back, nothing is sent twice."""
    from harewatch.broker.declare import declare
    from harewatch.broker.publish import ConfirmedPublisher, OutMessage
    from harewatch.broker.topology import Names, topology_from_config
    from harewatch.errors import UnroutableMessage
    from harewatch.routing.config import load_config
    from tests.conftest import get_all

    names = Names(declared.prefix)
    pika_channel.queue_delete(names.notify_queue("slack"))
    pub = ConfirmedPublisher(declared)

    def send(notes):
        pub.publish([OutMessage(names.alerts, key, json.dumps(note.to_dict()).encode()) for key, note in notes])

    router.receive(event("web-1"), now=T0)
    with pytest.raises(UnroutableMessage, match="1 of 2 messages came back"):
        router.tick(send, now=T0 + 30)
    with pytest.raises(UnroutableMessage, match="1 of 1 messages came back"):   # the flusher's next round
        router.tick(send, now=T0 + 31)
    declare(topology_from_config(load_config(declared.config), declared.prefix), declared)
    assert router.tick(send, now=T0 + 32) == 1
    assert router.tick(send, now=T0 + 33) == 0
    pub.close()
    webhook = [json.loads(b) for _, _, b in get_all(pika_channel, names.notify_queue("webhook"), expect=1)]
    slack = [json.loads(b) for _, _, b in get_all(pika_channel, names.notify_queue("slack"), expect=1)]
    assert [(n["receiver"], n["status"], n["firing"]) for n in webhook + slack] == [("pay", "firing", 1)] * 2
