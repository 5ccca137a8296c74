"""Detection pipeline benchmark: one detection worker beside the bare broker, same messages, same box.

    python -m bench.pipeline [--series 200]

1. warm-up (not timed): 2.5 days of 5-minute history per series, so every
   series has a fitted seasonal model;
2. one reading per message and 100 readings per message: end-to-end
   readings/s (publishing and consuming at once) through a bare pika
   publish + consume of the same bodies, then through harewatch;
3. publish-to-anomaly latency with spikes injected, at half the sustained rate.
Prints one table. Uses its own vhost, deleted afterwards.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pika

from harewatch.settings import load_settings
from harewatch.routing.config import load_config
from harewatch.broker.declare import declare
from harewatch.broker.management import Management
from harewatch.broker.topology import Names, topology_from_config
from harewatch.workers.store import StateStore

ROOT = Path(__file__).resolve().parent.parent
STEP, DAY = 300.0, 86400.0


def make_readings(n_series: int, t0: float, n_points: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_points):
        t = t0 + i * STEP
        base = 100 + 30 * math.sin(2 * math.pi * (t % DAY) / DAY)
        noise = rng.normal(0, 1, n_series)
        for s in range(n_series):
            v = base + noise[s] + (s % 10)
            out.append({"metric": "bench_load", "value": round(float(v), 3), "ts": t, "labels": {"host": f"h{s}"}})
    return out


def bodies(readings, per_msg: int) -> list[bytes]:
    return [json.dumps(readings[i:i + per_msg], separators=(",", ":")).encode() if per_msg > 1
            else json.dumps(readings[i], separators=(",", ":")).encode()
            for i in range(0, len(readings), per_msg)]


def publish_all(url: str, exchange: str, key: str, msgs: list[bytes], rate: float | None = None,
                on_sent=None) -> float:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.confirm_delivery()
    props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
    t0 = time.perf_counter()
    for i, b in enumerate(msgs):
        if rate:
            due = t0 + i / rate
            d = due - time.perf_counter()
            if d > 0:
                time.sleep(d)
        ch.basic_publish(exchange, key, b, props)
        if on_sent:
            on_sent(i, time.perf_counter())
    el = time.perf_counter() - t0
    conn.close()
    return el


def bare(url: str, msgs: list[bytes], per_msg: int, qname: str) -> float:
    """readings/s through pika publish (confirms) + pika consume (manual ack) of the same bodies."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.queue_declare(qname, durable=True, arguments={"x-queue-type": "quorum"})
    conn.close()
    done = threading.Event()
    got = [0]

    def consume():
        c = pika.BlockingConnection(pika.URLParameters(url))
        cc = c.channel()
        cc.basic_qos(prefetch_count=400)
        for method, props, body in cc.consume(qname, inactivity_timeout=0.5):
            if method is None:
                if done.is_set():
                    break
                continue
            json.loads(body)
            cc.basic_ack(method.delivery_tag)
            got[0] += 1
            if got[0] >= len(msgs):
                break
        c.close()

    th = threading.Thread(target=consume)
    t0 = time.perf_counter()
    th.start()
    publish_all(url, "", qname, msgs)
    th.join()
    el = time.perf_counter() - t0
    done.set()
    return len(msgs) * per_msg / el


def through_harewatch(settings, msgs, per_msg, store, start_count) -> float:
    t0 = time.perf_counter()
    publish_all(settings.amqp_url, settings.prefix + "readings", "bench_load.h", msgs)
    want = start_count + len(msgs) * per_msg
    while store.readings_total() < want:
        time.sleep(0.01)
    return len(msgs) * per_msg / (time.perf_counter() - t0)


def start_worker(settings) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMQP_", "HAREWATCH_", "REDIS_"))}
    env.update({"AMQP_URL": settings.amqp_url, "REDIS_URL": settings.redis_url, "HAREWATCH_CONFIG": settings.config,
                "HAREWATCH_PREFIX": settings.prefix})
    log = open(ROOT / ".pytest_cache" / "bench-worker.log", "w") if (ROOT / ".pytest_cache").exists() \
        else subprocess.DEVNULL
    p = subprocess.Popen([sys.executable, "-m", "celery", "-A", "harewatch.workers", "worker", "--detect", "all",
                          "-Q", Names(settings.prefix).tasks, "--concurrency", "1", "--without-mingle",
                          "--without-gossip", "--loglevel", "WARNING"], cwd=ROOT, env=env, stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True)
    time.sleep(4)
    return p


def latency(settings, n_series: int, t0: float, rate_readings: float, seconds: float = 20.0) -> list[float]:
    """Publish 100-reading messages at ``rate_readings``; one spike per 10 messages; time to its anomaly."""
    per_msg = 100
    n_points = int(rate_readings * seconds / n_series) + 1
    rs = make_readings(n_series, t0, n_points, seed=7)
    msgs = [rs[i:i + per_msg] for i in range(0, len(rs), per_msg)]
    spikes = {}
    for j in range(5, len(msgs), 10):
        r = msgs[j][(j * 7919) % len(msgs[j])]   # spread the spikes over the series
        r["value"] += 60
        spikes[(r["labels"]["host"], r["ts"])] = j
    encoded = [json.dumps(m, separators=(",", ":")).encode() for m in msgs]
    sent: dict[int, float] = {}
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, settings.prefix + "anomalies", "#")
    lat: list[float] = []
    seen: dict[str, int] = {}
    from harewatch.times import parse_ts

    th = threading.Thread(target=lambda: publish_all(settings.amqp_url, settings.prefix + "readings", "bench_load.h",
                                                     encoded, rate=rate_readings / per_msg,
                                                     on_sent=lambda i, t: sent.__setitem__(i, t)))
    th.start()
    deadline = time.monotonic() + seconds + 30
    idle_since = None
    for method, props, body in ch.consume(q, auto_ack=True, inactivity_timeout=0.2):
        now = time.perf_counter()
        idle_since = None if method is not None else (idle_since or now)
        if method is not None:
            ev = json.loads(body)
            seen[ev["type"]] = seen.get(ev["type"], 0) + 1
            key = (ev["labels"]["host"], parse_ts(ev["ts"]))
            j = spikes.get(key)
            if j is not None and j in sent and ev["type"] == "spike":
                lat.append(now - sent[j])
        if (not th.is_alive() and idle_since and now - idle_since > 3.0) or time.monotonic() > deadline:
            break
    th.join()
    conn.close()
    latency.seen = seen  # type: ignore[attr-defined]
    latency.injected = len(spikes)  # type: ignore[attr-defined]
    return lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--single-points", type=int, default=10, help="points per series, one reading per message")
    ap.add_argument("--batch-points", type=int, default=100, help="points per series, 100 readings per message")
    args = ap.parse_args()
    base = load_settings()
    mgmt = Management(base.management_url)
    vhost = f"harewatch-bench-{uuid.uuid4().hex[:6]}"
    mgmt.create_vhost(vhost)
    url = base.amqp_url.rsplit("/", 1)[0] + "/" + vhost
    settings = base.with_overrides(amqp_url=url, prefix="bench.", config=str(ROOT / "bench" / "pipeline.yaml"))
    store = StateStore(settings.redis_url, settings.prefix)
    store.clear()
    worker = None
    try:
        declare(topology_from_config(load_config(settings.config), settings.prefix), settings)
        worker = start_worker(settings)
        n = args.series
        hist_pts = int(2.5 * DAY / STEP)
        lat_pts_max = int(80_000 * 20 / n) + 1
        # every phase's timestamps stay in the past (the workers reject readings from the future)
        t_hist = math.floor(time.time() / STEP) * STEP - (hist_pts + args.single_points + args.batch_points
                                                           + lat_pts_max + 12) * STEP
        warm = make_readings(n, t_hist, hist_pts)
        t_warm = time.perf_counter()
        through_harewatch(settings, bodies(warm, 100), 100, store, 0)
        warm_s = time.perf_counter() - t_warm
        t = t_hist + hist_pts * STEP
        rows = []
        for per_msg, pts in ((1, args.single_points), (100, args.batch_points)):
            rs = make_readings(n, t, pts, seed=per_msg)
            t += pts * STEP
            msgs = bodies(rs, per_msg)
            b = bare(settings.amqp_url, msgs, per_msg, f"bench.bare.{per_msg}")
            h = through_harewatch(settings, msgs, per_msg, store, store.readings_total())
            rows.append((per_msg, len(rs), b, h))
        sustained = rows[1][3]
        lat = latency(settings, n, t, sustained / 2)
        print(f"detection pipeline benchmark ({n} series, one detection worker, producer on the same 2-core box)")
        print(f"warm-up: {len(warm):,} readings of history in {warm_s:.1f} s")
        print()
        print(f"{'readings per message':>20} {'readings':>9} {'bare broker r/s':>16} {'harewatch r/s':>14} {'ratio':>6}")
        for per_msg, cnt, b, h in rows:
            print(f"{per_msg:>20} {cnt:>9,} {b:>16,.0f} {h:>14,.0f} {h / b:>6.2f}")
        print()
        if lat:
            lat.sort()
            p50 = statistics.median(lat)
            p99 = lat[min(len(lat) - 1, int(math.ceil(0.99 * len(lat))) - 1)]
            print(f"publish-to-anomaly latency at {sustained / 2:,.0f} readings/s (half the sustained rate): "
                  f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, over {len(lat)} of "
                  f"{latency.injected} injected spikes (events seen: {latency.seen})")  # type: ignore[attr-defined]
        else:
            print("publish-to-anomaly latency: no spike came back")
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        store.clear()
        mgmt.delete_vhost(vhost)


if __name__ == "__main__":
    main()
