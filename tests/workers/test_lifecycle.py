"""Series come and go: retirement of silent series, the per-metric series limit, against real Redis
(the engine alone) and through a real detection worker and broker."""
from __future__ import annotations

import json
import time
from typing import Any, Callable

import pika
import pytest

from harewatch.broker.declare import declare
from harewatch.broker.topology import topology_from_config
from harewatch.messages import fingerprint
from harewatch.producers.publisher import Publisher
from harewatch.routing.loader import load_full_config
from harewatch.workers.detection.detector import SeriesState
from harewatch.workers.engine import Engine, InMessage
from harewatch.workers.store import INVALID_PER_EPISODE, StateStore
from tests.conftest import get_all

HOUR = 3600.0
CONFIG = """
metrics:
  churn: {periods: none, interval: 30m, retire_after: 2h}
  exploding: {periods: none, interval: 1m, max_series: 1000}
  steady: {periods: none, interval: 5m}
selfwatch: {team: platform}
channels: [webhook]
"""


@pytest.fixture
def lsettings(config_settings: Callable[[str, str], Any]) -> Any:
    return config_settings("lc", CONFIG)


def namespace_bytes(store: StateStore) -> int:
    """Redis memory held by this namespace's keys (MEMORY USAGE of each), not the whole server's."""
    p = store.r.pipeline(transaction=False)
    n = 0
    for k in store.r.scan_iter(f"{store.ns}*", count=2000):
        p.memory_usage(k, samples=0)
        n += 1
    return sum(v or 0 for v in p.execute()) if n else 0


def messages(readings: list[dict[str, Any]]) -> list[InMessage]:
    return [InMessage(json.dumps(r).encode(), "application/json") for r in readings]


def test_a_silent_series_is_retired_and_comes_back_as_new_saying_so(lsettings: Any) -> None:
    store = StateStore(lsettings.redis_url, lsettings.prefix)
    eng = Engine(load_full_config(lsettings.config), store)
    t0 = time.time() - 3 * 86400
    gone = {"metric": "churn", "labels": {"pod": "a"}}
    eng.process(messages([{**gone, "value": 1.0 + i % 2, "ts": t0 + i * 1800} for i in range(20)]))
    eng.persist()
    fp = fingerprint("churn", gone["labels"])
    store.mark_missing(fp)                                  # its missing_data alert is open
    other = {"metric": "churn", "labels": {"pod": "b"}}
    last = t0 + 19 * 1800
    # another series carries event time on: 1h59m after `a` fell silent, nothing is retired yet ...
    eng.process(messages([{**other, "value": 1.0, "ts": last + 2 * HOUR - 60}]))
    eng.persist()
    assert eng.retire()[0] == [] and store.series_count("churn") == 2
    # ... at 2h it is: state, meta and indexes deleted, its open missing_data alert resolved, counted
    eng.process(messages([{**other, "value": 1.0, "ts": last + 2 * HOUR + 60}]))
    eng.persist()
    retired, resolved = eng.retire()
    assert [r.fingerprint for r in retired] == [fp] and store.get_states([fp]) == {}
    assert store.meta(fp) is None and store.series_count("churn") == 1 and store.retired_total() == {"churn": 1}
    assert [(e.series, e.type, e.status) for e in resolved] == [(fp, "missing_data", "resolved")]
    # it comes back: a new series (cold start), and its first event says it was retired
    fresh = Engine(load_full_config(lsettings.config), store)
    back = [{**gone, "value": 1.0 + i % 2, "ts": last + 5 * HOUR + i * 1800} for i in range(40)]
    back[-1]["value"] = 500.0
    res = fresh.process(messages(back))
    fresh.persist()
    st = SeriesState.from_bytes(store.get_states([fp])[fp])
    assert st.n == 40
    first = res.events[0]
    assert first.model["returned_after_seconds"] == round(5 * HOUR)
    assert all("returned_after_seconds" not in e.model for e in res.events[1:])
    # the same rule holds for a worker that still has the old state cached
    fresh.process(messages([{**gone, "value": 1.0, "ts": back[-1]["ts"] + 3 * HOUR}]))
    assert fresh.cache[fp].n == 1 and fresh.cache[fp].returned_after == pytest.approx(3 * HOUR)


@pytest.mark.broker
def test_churn_keeps_live_series_and_redis_memory_bounded(lsettings: Any, worker_factory: Any) -> None:
    """5,000 series replaced by new label sets every (event-time) hour for two days, through the broker."""
    declare(topology_from_config(load_full_config(lsettings.config), lsettings.prefix), lsettings)
    worker_factory(lsettings, "--detect", "churn", "-Q", lsettings.prefix + "harewatch.tasks").start()
    store = StateStore(lsettings.redis_url, lsettings.prefix)
    sweeper = Engine(load_full_config(lsettings.config), store)   # the retire_series task's body
    t0 = (time.time() // HOUR) * HOUR - 3 * 86400
    sent, live, mem = 0, [], []
    with Publisher(settings=lsettings, batch_size=500) as pub:
        for h in range(48):
            for k in range(2):          # two readings per series and hour
                pub.publish([{"metric": "churn", "value": float(i % 5), "ts": t0 + h * HOUR + k * 1800,
                              "labels": {"pod": f"web-{h}-{i}"}} for i in range(5000)])
            pub.flush()
            sent += 10_000
            deadline = time.monotonic() + 120
            while store.readings_total() < sent:
                assert time.monotonic() < deadline, f"hour {h}: {store.readings_total()} of {sent} readings scored"
                time.sleep(0.05)
            sweeper.retire()
            live.append(store.series_count("churn"))
            if h in (2, 47):
                mem.append(namespace_bytes(store))
    print(f"\nlive series after hours 1, 3, 48: {live[0]}, {live[2]}, {live[-1]}; Redis memory of the namespace "
          f"after hour 3: {mem[0] / 1e6:.1f} MB, after hour 48: {mem[1] / 1e6:.1f} MB; "
          f"retired {store.retired_total()}")
    assert max(live) <= 15_000 and live[-1] == 10_000          # the last two hours' series, no more
    assert store.retired_total() == {"churn": 46 * 5000}
    assert mem[1] <= 1.2 * mem[0]                               # 240,000 series seen, memory as after 3 hours
    assert store.r.zcard(store.ns + "lastseen") == 10_000


@pytest.mark.broker
def test_label_explosion_stops_at_max_series_alerts_once_and_loses_nothing(lsettings: Any, worker_factory: Any,
                                                                           watch_for: Any) -> None:
    declare(topology_from_config(load_full_config(lsettings.config), lsettings.prefix), lsettings)
    events = watch_for(lsettings)
    worker_factory(lsettings, "--detect", "exploding", "-Q", lsettings.prefix + "harewatch.tasks").start()
    store = StateStore(lsettings.redis_url, lsettings.prefix)
    t0 = time.time() - 86400
    hosts = [{"host": f"h{i}"} for i in range(5)]
    existing = [{"metric": "exploding", "value": 10.0 + (j % 3), "ts": t0 + j * 60, "labels": h}
                for j in range(300) for h in hosts]
    started = time.monotonic()
    with Publisher(settings=lsettings, batch_size=100) as pub:
        pub.publish(existing[:500])                 # the existing series are known before the explosion
        pub.flush()
        deadline = time.monotonic() + 60
        while store.readings_total() < 500:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for b in range(1000):                       # 100,000 new series, while the existing keep reporting
            pub.publish([{"metric": "exploding", "value": 1.0, "ts": t0 + 18_000 + b,
                          "labels": {"request_id": f"{b}-{i}"}} for i in range(100)])
            if b % 10 == 0:
                pub.publish(existing[500 + b // 10 * 10:500 + (b // 10 + 1) * 10])
        pub.publish(existing[1500:])
    want = {fingerprint("exploding", h): 300 for h in hosts}
    deadline = time.monotonic() + 120
    while True:
        lim = store.limits().get("exploding", {})
        got = {fp: SeriesState.from_bytes(b).n for fp, b in store.get_states(list(want)).items()}
        if got == want and lim.get("rejected") == 100_000 - 995:
            break
        assert time.monotonic() < deadline, (got, lim)
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    assert store.series_count("exploding") == 1000             # 5 existing + 995 new, no more
    conn = pika.BlockingConnection(pika.URLParameters(lsettings.amqp_url))
    invalid = get_all(conn.channel(), lsettings.prefix + "readings.invalid", expect=INVALID_PER_EPISODE, timeout=30)
    conn.close()
    assert len(invalid) == INVALID_PER_EPISODE                 # the first ones, to see which label explodes
    assert {p.headers["x-harewatch-reason"] for _, p, _ in invalid} == {"cardinality"}
    assert "request_id" in json.loads(invalid[0][2])["labels"] and "max_series" in invalid[0][1].headers["x-harewatch-error"]
    limit_events = [e for e in events(lambda s: any(e["metric"] == "harewatch_series_limit" for e in s), timeout=20)
                    if e["metric"] == "harewatch_series_limit"]
    # one alert (one label set), stated again at most once a minute while the explosion lasts
    assert {json.dumps(e["labels"], sort_keys=True) for e in limit_events} == \
        {json.dumps({"component": "detect", "limited_metric": "exploding"}, sort_keys=True)}
    assert 1 <= len(limit_events) <= 1 + elapsed // 60
    assert limit_events[0]["_routing_key"] == "platform.spike.warning"
