"""Detection workers end to end: real Celery worker processes, real RabbitMQ and Redis."""
from __future__ import annotations

import json
import math
import os
import random
import time

import numpy as np
import pika
import pytest

from harewatch.messages import fingerprint
from harewatch.producers.publisher import Publisher
from tests.conftest import get_all
from tests.conftest import queue_depth
from harewatch.workers.detection.detector import SeriesState
from harewatch.workers.store import StateStore

pytestmark = [pytest.mark.broker, pytest.mark.e2e]

STEP, DAY = 300.0, 86400.0


def series_data(n_series: int = 3, days: float = 3.0, spike_at: int | None = None, seed: int = 0):
    """5-minute seasonal readings (metric 'test_load', through detect.default), newest ending now."""
    rng = np.random.default_rng(seed)
    n = int(days * DAY / STEP)
    t0 = math.floor(time.time() / STEP) * STEP - n * STEP
    out = []
    for s in range(n_series):
        x = 100 + 30 * np.sin(2 * np.pi * (np.arange(n) * STEP + t0) / DAY) + rng.normal(0, 1, n)
        if spike_at is not None:
            x[spike_at] += 25
        for i in range(n):
            out.append({"metric": "test_load", "value": round(float(x[i]), 3), "ts": t0 + i * STEP,
                        "labels": {"host": f"h{s}", "team": "payments" if s == 0 else "search"}})
    out.sort(key=lambda r: r["ts"])
    return out


def big_spikes(events):
    """The injected +25 (25 sigma) spikes, one per host."""
    return {e["labels"]["host"]: e for e in events
            if e["type"] == "spike" and e["value"] - e["expected"] > 12}.values()


def scored(settings, readings) -> dict[str, int]:
    """Points each series' stored state has taken in."""
    store = StateStore(settings.redis_url, settings.prefix)
    fps = sorted({fingerprint(r["metric"], r["labels"]) for r in readings})
    return {fp: SeriesState.from_bytes(b).n for fp, b in store.get_states(fps).items()}


def wait_scored(settings, readings, timeout=90.0) -> dict[str, int]:
    want = {}
    for r in readings:
        fp = fingerprint(r["metric"], r["labels"])
        want[fp] = want.get(fp, 0) + 1
    deadline = time.monotonic() + timeout
    got = {}
    while time.monotonic() < deadline:
        got = scored(settings, readings)
        if got == want:
            return got
        time.sleep(0.5)
    raise AssertionError(f"scored {got}, want {want}")


def test_history_then_spike_reaches_anomalies(wsettings, worker_factory, watch):
    n = int(3 * DAY / STEP)
    readings = series_data(3, 3.0, spike_at=n - 5)
    worker_factory(wsettings, "--detect", "all", "-Q", wsettings.prefix + "harewatch.tasks").start()
    with Publisher(settings=wsettings, batch_size=100) as pub:
        pub.publish(readings)
    wait_scored(wsettings, readings)
    events = watch(lambda s: len(big_spikes(s)) >= 3)
    spikes = big_spikes(events)
    assert len({e["labels"]["host"] for e in spikes}) == 3, [(e["labels"]["host"], e["type"], e["score"], e["ts"], e["confidence"], e["model"]) for e in events]
    ev = next(e for e in spikes if e["labels"]["host"] == "h0")
    assert ev["_routing_key"] == f"payments.spike.{ev['severity']}" and ev["team"] == "payments"
    assert ev["lower"] < ev["expected"] < ev["upper"] < ev["value"] and 0.5 <= ev["score"] < 1
    assert ev["model"]["method"] == "stl" and ev["model"]["periods"] == [86400]
    assert len(ev["window"]["ts"]) == len(ev["window"]["observed"]) == len(ev["window"]["expected"]) > 30
    assert ev["series"] == fingerprint("test_load", {"host": "h0", "team": "payments"})


def test_a_burst_is_saved_and_acknowledged_when_it_ends_not_at_the_next_checkpoint(wsettings, monkeypatch):
    """With checkpoints an hour apart, a detection consumer whose queue goes quiet saves the states and
    acknowledges what it scored at once: nothing waits unacknowledged (to be scored again after a crash)
    for the next checkpoint."""
    from harewatch.broker.connection import pika_parameters
    from harewatch.broker.consume import BatchConsumer, run_in_thread
    from harewatch.workers import detect, runtime
    from harewatch.workers.celery_app import create_app

    monkeypatch.setattr(detect, "CHECKPOINT", 3600.0)
    readings = series_data(2, 0.5)
    with Publisher(settings=wsettings, batch_size=10) as pub:
        pub.publish(readings)
    before = runtime._settings
    runtime.use(wsettings)
    consumer = BatchConsumer(lambda: pika_parameters(wsettings), [wsettings.prefix + "detect.default"],
                             detect.Detection(create_app(wsettings)), tick=0.1, name="test-detection")
    thread = run_in_thread(consumer)
    try:
        wait_scored(wsettings, readings, timeout=60)
        deadline = time.monotonic() + 60     # the management API's counts lag by its stats interval
        while queue_depth(wsettings, "detect.default") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert queue_depth(wsettings, "detect.default") == 0, "scored but left unacknowledged"
    finally:
        consumer.stop()
        thread.join(30)
        runtime.use(before)  # type: ignore[arg-type]


def test_garbage_is_dead_lettered_with_reason_and_worker_survives(wsettings, worker_factory):
    w = worker_factory(wsettings, "--detect", "all", "-Q", wsettings.prefix + "harewatch.tasks").start()
    pid = w.proc.pid
    good = series_data(2, 0.5)
    rnd = random.Random(1)
    bad = [
        (os.urandom(300), None, "parse"),
        (b'{"metric":"test_load","value":"high","ts":1}', "application/json", "bad_type"),
        (b'{"metric":"test_load","value":NaN}', "application/json", "not_finite"),
        (b"x" * (10 * 1024 * 1024), None, "oversize"),
        (b'{"metric":"test_load","value":1}', "image/png", "content_type"),
        (b'[{"metric": 5, "value": 1}]', None, "bad_type"),
        (b'{"metric":"test_load","value":1,"ts":"2999-01-01T00:00:00Z"}', None, "ts_out_of_range"),
    ]
    conn = pika.BlockingConnection(pika.URLParameters(wsettings.amqp_url))
    ch = conn.channel()
    ch.confirm_delivery()
    ex = wsettings.prefix + "readings"
    chunks = [good[i:i + 10] for i in range(0, len(good), 10)]
    for i, chunk in enumerate(chunks):
        ch.basic_publish(ex, "test_load.h", json.dumps(chunk).encode(),
                         pika.BasicProperties(content_type="application/json", delivery_mode=2))
        if i < len(bad):
            body, ct, _ = bad[i]
            ch.basic_publish(ex, f"test_load.bad{i}", body, pika.BasicProperties(content_type=ct, delivery_mode=2))
    wait_scored(wsettings, good)
    invalid = get_all(ch, wsettings.prefix + "readings.invalid", expect=len(bad), timeout=30)
    conn.close()
    reasons = sorted(p.headers["x-harewatch-reason"] for _, p, _ in invalid)
    assert reasons == sorted(r for _, _, r in bad)
    for m, p, body in invalid:
        assert p.headers["x-harewatch-error"] and p.headers["x-original-routing-key"].startswith("test_load.bad")
    assert any(len(b) == 10 * 1024 * 1024 for _, _, b in invalid)  # nothing lost, not even the huge one
    assert w.alive and w.proc.pid == pid and "Traceback" not in w.text()
    assert rnd  # deterministic garbage


def test_sigkill_mid_batch_loses_nothing(wsettings, worker_factory, watch):
    n = int(2.5 * DAY / STEP)
    readings = series_data(40, 2.5, spike_at=n - 3, seed=3)
    half = len(readings) // 2
    with Publisher(settings=wsettings, batch_size=8) as pub:   # a backlog of many small messages
        pub.publish(readings[:half])
    w = worker_factory(wsettings, "--detect", "all", "-Q", wsettings.prefix + "harewatch.tasks", name="k1").start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(scored(wsettings, readings).values()) < half // 4:
        time.sleep(0.05)
    w.kill()   # SIGKILL the whole worker, at an observed point mid-stream
    assert 0 < sum(scored(wsettings, readings).values()) < len(readings)   # the rest is not even published
    with Publisher(settings=wsettings, batch_size=8) as pub:
        pub.publish(readings[half:])
    worker_factory(wsettings, "--detect", "all", "-Q", wsettings.prefix + "harewatch.tasks", name="k2").start()
    wait_scored(wsettings, readings)
    events = watch(lambda s: len(big_spikes(s)) >= 40)
    assert len(big_spikes(events)) == 40
    assert queue_depth(wsettings, "readings.invalid") == 0


def test_exchange_deleted_mid_run_defers_until_restored(wsettings, worker_factory, watch):
    """Nothing is acked while its anomaly cannot be published: the spike goes out once the exchange is back."""
    n = int(2.5 * DAY / STEP)
    readings = series_data(1, 2.5, spike_at=n - 1, seed=4)
    w = worker_factory(wsettings, "--detect", "all", "-Q", wsettings.prefix + "harewatch.tasks").start()
    conn = pika.BlockingConnection(pika.URLParameters(wsettings.amqp_url))
    conn.channel().exchange_delete(wsettings.prefix + "anomalies")
    with Publisher(settings=wsettings, batch_size=100) as pub:
        pub.publish(readings)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "go back to the queue" not in w.text():
        time.sleep(0.1)
    assert "go back to the queue" in w.text()
    deadline = time.monotonic() + 30   # the management API's figures lag by a few seconds
    while time.monotonic() < deadline and queue_depth(wsettings, "detect.default") == 0:
        time.sleep(0.5)
    assert queue_depth(wsettings, "detect.default") > 0    # held, not acked
    from harewatch.routing.config import load_config
    from harewatch.broker.declare import declare
    from harewatch.broker.topology import topology_from_config
    # the exchange alone first, and the watch bound to it: a publish in between has no queue, comes back and is
    # held again (mandatory), so the watch cannot miss the spike to alerts.route bound a moment earlier
    conn.channel().exchange_declare(wsettings.prefix + "anomalies", "topic", durable=True)
    watch.rebind()
    declare(topology_from_config(load_config(wsettings.config), wsettings.prefix), wsettings)
    events = watch(lambda s: len(big_spikes(s)) >= 1, timeout=90)
    assert len(big_spikes(events)) == 1
    wait_scored(wsettings, readings)
    conn.close()


def test_empty_bodies_go_to_invalid_and_nothing_around_them_is_lost(wsettings, worker_factory):
    readings = series_data(1, 0.3, seed=6)
    w = worker_factory(wsettings, "--detect", "all", "-Q", wsettings.prefix + "harewatch.tasks").start()
    conn = pika.BlockingConnection(pika.URLParameters(wsettings.amqp_url))
    ch = conn.channel()
    ch.confirm_delivery()
    for i, r in enumerate(readings):
        ch.basic_publish(wsettings.prefix + "readings", "test_load.h", json.dumps(r).encode(),
                         pika.BasicProperties(content_type="application/json", delivery_mode=2))
        if i % 20 == 10:
            ch.basic_publish(wsettings.prefix + "readings", "test_load.h", b"",
                             pika.BasicProperties(content_type="application/json" if i % 40 else None,
                                                  delivery_mode=2))
    wait_scored(wsettings, readings)
    empties = sum(1 for i in range(len(readings)) if i % 20 == 10)
    invalid = get_all(ch, wsettings.prefix + "readings.invalid", expect=empties, timeout=30)
    conn.close()
    assert len(invalid) == empties
    assert {p.headers["x-harewatch-queue"] for _, p, _ in invalid} == {wsettings.prefix + "detect.default"}
    assert {b for _, _, b in invalid} == {b""} and w.alive


def test_connection_closed_by_broker_is_survived(wsettings, worker_factory, mgmt):
    readings = series_data(3, 2.0, seed=5)
    w = worker_factory(wsettings, "--detect", "all", "-Q", wsettings.prefix + "harewatch.tasks").start()
    half = len(readings) // 2
    with Publisher(settings=wsettings, batch_size=50) as pub:
        pub.publish(readings[:half])
    closed = 0
    deadline = time.monotonic() + 30
    while not closed and time.monotonic() < deadline:
        for c in mgmt.connections(wsettings.vhost):
            if "celery" in json.dumps(c.get("client_properties", {})).lower() or c.get("user") == "guest":
                mgmt.close_connection(c["name"], "test closes the worker's connections")
                closed += 1
        time.sleep(0.3)
    assert closed
    with Publisher(settings=wsettings, batch_size=50) as pub:
        pub.publish(readings[half:])
    wait_scored(wsettings, readings, timeout=120)
    assert w.alive


def test_two_workers_find_what_one_finds(vhost_factory, worker_factory):
    from tests.conftest import make_settings
    from harewatch.routing.config import load_config
    from harewatch.broker.declare import declare
    from harewatch.broker.topology import topology_from_config
    import uuid

    n = int(2.5 * DAY / STEP)
    readings = series_data(3, 2.5, spike_at=n - 10, seed=9)
    readings[len(readings) // 2]["value"] += 40  # one more spike mid-way
    found = []
    for count in (1, 2):
        s = make_settings(vhost_factory("two"), prefix=f"t{uuid.uuid4().hex[:6]}.")
        declare(topology_from_config(load_config(s.config), s.prefix), s)
        conn = pika.BlockingConnection(pika.URLParameters(s.amqp_url))
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, s.prefix + "anomalies", "#")
        workers = [worker_factory(s, "--detect", "all", "-Q", s.prefix + "harewatch.tasks", name=f"two{count}{i}")
                   for i in range(count)]
        for w in workers:
            w.start()
        with Publisher(settings=s, batch_size=10) as pub:
            pub.publish(readings)
        wait_scored(s, readings)
        time.sleep(1.0)
        evs = get_all(ch, q, timeout=2)
        found.append(sorted((json.loads(b)["series"], json.loads(b)["type"], json.loads(b)["ts"]) for _, _, b in evs))
        conn.close()
        for w in workers:
            w.stop()        # first: a refit task finishing later would write into the cleared namespace
        StateStore(s.redis_url, s.prefix).clear()
    assert found[0] and found[0] == found[1]
