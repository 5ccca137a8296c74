"""The router worker under a storm: batched intake killed with SIGKILL mid-drain loses nothing."""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pika
import pytest

from harewatch.broker.declare import declare
from harewatch.broker.publish import ConfirmedPublisher, OutMessage
from harewatch.broker.topology import Names, topology_from_config
from harewatch.messages import AnomalyEvent
from harewatch.routing.loader import load_full_config
from harewatch.routing.store import RouterStore
from tests.conftest import make_settings

TEAMS, HOSTS, ROUNDS = 10, 30, 20     # 300 alerts in 10 groups, 6,000 events


def events() -> list[AnomalyEvent]:
    out = []
    for r in range(ROUNDS):
        for t in range(TEAMS):
            for h in range(HOSTS):
                out.append(AnomalyEvent.from_dict({
                    "metric": "cpu_util", "labels": {"host": f"h{h:02d}"}, "team": f"team{t}", "type": "spike",
                    "severity": "warning", "ts": 1_800_000_000 + r * 60, "value": 97.0 + r, "expected": 40.0,
                    "score": 0.9, "window": {"ts": [1_800_000_000 + i for i in range(64)], "observed": [1.5] * 64,
                                             "expected": [1.0] * 64}}))
    return out


@pytest.mark.broker
@pytest.mark.e2e
def test_router_sigkill_mid_drain_loses_nothing(vhost: str, tmp_path: Path, worker_factory: Any) -> None:
    cfg = tmp_path / "hw.yaml"
    cfg.write_text("""
channels: [webhook]
route: {receiver: hook, group_by: [team], group_wait: 2s, group_interval: 2s, repeat_interval: 4h}
receivers:
  - name: hook
    webhook_configs: [{url: "http://127.0.0.1:9/hook"}]
""")
    s = make_settings(vhost, prefix=f"r{uuid.uuid4().hex[:6]}.", config=str(cfg))
    names = Names(s.prefix)
    declare(topology_from_config(load_full_config(s.config), s.prefix), s)
    store = RouterStore(s.redis_url, s.prefix, time.time)
    evs = events()
    pub = ConfirmedPublisher(s)
    pub.publish([OutMessage(names.anomalies, ev.routing_key(), ev.to_json().encode(),
                            {"content_type": "application/json"}) for ev in evs])
    pub.close()
    try:
        args = ["--route", "-Q", s.prefix + "harewatch.tasks"]
        first = worker_factory(s, *args, name="router1").start()
        deadline = time.monotonic() + 60
        while not 0 < store.events_total() < len(evs) and time.monotonic() < deadline:
            time.sleep(0.005)
        taken = store.events_total()
        first.kill()                                    # SIGKILL, flusher process and all
        assert 0 < taken < len(evs), "the kill was not mid-drain"
        worker_factory(s, *args, name="router2").start()
        # at least once: a batch in flight when the router died is taken in again, never lost
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            alerts = store.firing(time.time())
            if len(alerts) == TEAMS * HOSTS and all(a.events >= ROUNDS for a in alerts):
                break
            time.sleep(0.1)
        assert len(alerts) == TEAMS * HOSTS
        assert sorted({min(a.events, ROUNDS) for a in alerts}) == [ROUNDS]
        assert store.events_total() >= len(evs)
        # every group is notified of every alert (a flush may have come before the last of them was in)
        conn = pika.BlockingConnection(pika.URLParameters(s.amqp_url))
        ch = conn.channel()
        complete: set[str] = set()
        deadline = time.monotonic() + 60
        for method, _props, body in ch.consume(names.notify_queue("webhook"), auto_ack=True,
                                               inactivity_timeout=0.5):
            if method is not None:
                note = json.loads(body)[1]["notification"]
                assert note["firing"] <= HOSTS
                if note["firing"] == HOSTS:
                    complete.add(note["group_labels"]["team"])
            if len(complete) == TEAMS or time.monotonic() > deadline:
                break
        conn.close()
        assert complete == {f"team{t}" for t in range(TEAMS)}
    finally:
        store.clear()
