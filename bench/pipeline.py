"""Detection benchmark: one detection worker draining its queue, beside a bare consumer of the same messages.

    python -m bench.pipeline [--series 1000]

1. warm-up (not timed): 2.5 days of 5-minute history per series through the worker,
   so every series has a fitted seasonal model (the worker runs every refit task it
   asked for before it is stopped, so none is left for the timed drains).
2. drain: the detect queue is preloaded with 200,000 readings one per message, and 1,000,000
   ten and a hundred per message (a worker scores those at about 100,000/s: 200,000 would last
   two seconds), a worker started, and its drain timed from its first checkpoint to its last
   (start-up excluded; the worker checkpoints once its queue goes quiet), beside a bare pika
   consumer draining the same bodies from a quorum queue in the same run (one reading per
   message: --pairs alternated pairs, the median ratio shown). Every worker runs the refits
   its drain asked for before it is stopped, so no row's worker fits models left over from
   another.
3. end to end: the same, published while the worker runs, by a publisher keeping
   1,000 messages in flight (pipelined confirms), so the row is not bound by one
   synchronous confirm per message.
4. partitions: a metric with 2 partitions drained by one worker, then by two.
5. publish-to-anomaly latency with spikes injected, at half the sustained rate.

Prints tables. Uses its own vhost and Redis prefix, removed afterwards.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pika

from bench.common import bare_drain, bench_vhost, preload, start_worker, stop_worker, wait_consuming
from harewatch.broker.connection import pika_parameters
from harewatch.broker.declare import declare
from harewatch.broker.topology import topology_from_config
from harewatch.routing.config import load_config
from harewatch.settings import Settings
from harewatch.times import parse_ts
from harewatch.workers.detection import IMPLEMENTATION
from harewatch.workers.store import StateStore

STEP, DAY = 300.0, 86400.0
PARTITION_POINTS = 120     # points per series in each partitioned drain (one reading per message)
E2E_CASES = ((1, 40), (100, 1000))   # readings per message, points per series, published while the worker runs
CONFIG = """# bench/pipeline.py: daily seasonality, 5-minute data. The replay runs event time thousands of times faster
# than real time, so a refit's grace (ten points of event time, 50 minutes live) lasts a fraction of a second
# and a wave of refits falls on the detection thread inline: seconds of stall no live worker meets. refit_every
# is stretched past the bench's span (a wave landed in the latency row: p99 12 s); bench.detector counts refits.
metrics:
  bench_load:
    periods: [1d]
    interval: 5m
    refit_every: 30d
  bench_hot:
    periods: [1d]
    interval: 5m
    refit_every: 30d
    partitions: 2
channels: [webhook]
"""


def make_readings(metric: str, n_series: int, t0: float, n_points: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_points):
        t = t0 + i * STEP
        base = 100 + 30 * math.sin(2 * math.pi * (t % DAY) / DAY)
        noise = rng.normal(0, 1, n_series)
        for s in range(n_series):
            out.append({"metric": metric, "value": round(float(base + noise[s] + (s % 10)), 3), "ts": t,
                        "labels": {"host": f"h{s}"}})
    return out


def messages(readings: list[dict[str, Any]], per_msg: int) -> list[tuple[str, bytes]]:
    """(routing key, body): one reading per message keyed by its series, else batches keyed by the first."""
    out = []
    for i in range(0, len(readings), per_msg):
        chunk = readings[i:i + per_msg]
        key = f"{chunk[0]['metric']}.{chunk[0]['labels']['host']}"
        out.append((key, json.dumps(chunk if per_msg > 1 else chunk[0], separators=(",", ":")).encode()))
    return out


def wait_total(store: StateStore, want: int, timeout: float = 600.0) -> tuple[float, int, float]:
    """Poll the readings total until ``want``: (time of the first change, the total then, time of the end)."""
    start = store.readings_total()
    first_t, first_n = 0.0, 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = store.readings_total()
        now = time.perf_counter()
        if got > start and not first_t:
            first_t, first_n = now, got
        if got >= want:
            return first_t, first_n, now
        time.sleep(0.005)
    raise SystemExit(f"the worker scored {store.readings_total() - start} of {want - start} readings in {timeout} s")


def drain(s: Settings, store: StateStore, msgs: list[tuple[str, bytes]], n_readings: int,
          workers: int = 1, which: str = "bench_load", settle: bool = False) -> float:
    """Readings/s of ``workers`` detection workers draining a preloaded queue, start-up excluded. With
    ``settle``, the workers then run the refit tasks the drain asked for, so the next drain measures
    consuming and scoring, not model fits left over from an earlier one."""
    base = store.readings_total()
    preload(s, s.prefix + "readings", msgs)
    procs = [start_worker(s, ["--detect", which], f"bench-detect-{i}.log") for i in range(workers)]
    try:
        first_t, first_n, end = wait_total(store, base + n_readings)
        if settle:
            wait_tasks_done(s)
        return (base + n_readings - first_n) / (end - first_t)
    finally:
        for p in procs:
            stop_worker(p)


def end_to_end(s: Settings, store: StateStore, msgs: list[tuple[str, bytes]], n_readings: int) -> float:
    """Readings/s from the start of a pipelined publish to the last reading scored, worker running."""
    base = store.readings_total()
    p = start_worker(s, ["--detect", "bench_load"], "bench-detect-e2e.log")
    try:
        wait_consuming(s, "detect.bench_load")
        t0 = time.perf_counter()
        preload(s, s.prefix + "readings", msgs)
        _, _, end = wait_total(store, base + n_readings)
        wait_tasks_done(s)        # the refits it asked for, so none is left for the next row's worker
        return n_readings / (end - t0)
    finally:
        stop_worker(p)


def bare_end_to_end(s: Settings, bodies: list[bytes], per_msg: int) -> float:
    """Readings/s through a pipelined publish and a bare consume of the same bodies at once."""
    q = f"{s.prefix}bare.e2e"
    conn = pika.BlockingConnection(pika_parameters(s))
    ch = conn.channel()
    ch.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum"})
    ch.basic_qos(prefetch_count=2000)
    got = [0]

    def on_message(c: Any, method: Any, props: Any, body: bytes) -> None:
        got[0] += 1
        if got[0] % 500 == 0 or got[0] == len(bodies):
            c.basic_ack(method.delivery_tag, multiple=True)
        if got[0] == len(bodies):
            c.stop_consuming()

    ch.basic_consume(q, on_message)
    t0 = time.perf_counter()
    th = threading.Thread(target=preload, args=(s, "", [(q, b) for b in bodies]))
    th.start()
    ch.start_consuming()
    el = time.perf_counter() - t0
    th.join()
    ch.queue_delete(q)
    conn.close()
    return len(bodies) * per_msg / el


def wait_tasks_done(s: Settings, quiet: float = 3.0, timeout: float = 900.0) -> None:
    """Until the task queue (refits) has stayed empty for ``quiet`` seconds."""
    conn = pika.BlockingConnection(pika_parameters(s))
    ch = conn.channel()
    empty_since = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ch.queue_declare(s.prefix + "harewatch.tasks", passive=True).method.message_count == 0:
            empty_since = empty_since or time.monotonic()
            if time.monotonic() - empty_since >= quiet:
                break
        else:
            empty_since = None
        time.sleep(0.2)
    conn.close()


def latency(s: Settings, n_series: int, t0: float, rate_readings: float, seconds: float = 20.0
            ) -> tuple[list[float], int]:
    """Publish 100-reading messages at ``rate_readings``, one spike per 10 messages, each on a series of its
    own (a series spiked again and again would rightly be learned as one that spikes); time to its anomaly."""
    per_msg = 100
    n_points = int(rate_readings * seconds / n_series) + 1
    rs = make_readings("bench_load", n_series, t0, n_points, seed=7)
    batches = [rs[i:i + per_msg] for i in range(0, len(rs), per_msg)]
    spikes = {}
    n_spikes = min(len(batches) // 10, n_series)
    for k in range(n_spikes):
        i = (k * n_points // n_spikes) * n_series + (k * 211) % n_series   # point-major: the k-th series
        r = rs[i]
        r["value"] += 60
        spikes[(r["labels"]["host"], r["ts"])] = i // per_msg
    encoded = [json.dumps(b, separators=(",", ":")).encode() for b in batches]
    sent: dict[int, float] = {}
    conn = pika.BlockingConnection(pika_parameters(s))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, s.prefix + "anomalies", "#")

    def publish() -> None:
        pc = pika.BlockingConnection(pika_parameters(s))
        pch = pc.channel()
        pch.confirm_delivery()
        props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
        start = time.perf_counter()
        for i, body in enumerate(encoded):
            d = start + i * per_msg / rate_readings - time.perf_counter()
            if d > 0:
                time.sleep(d)
            sent[i] = time.perf_counter()
            pch.basic_publish(s.prefix + "readings", "bench_load.h", body, props)
        pc.close()

    th = threading.Thread(target=publish)
    th.start()
    lat: list[float] = []
    idle_since = None
    deadline = time.monotonic() + seconds + 30
    for method, _props, body in ch.consume(q, auto_ack=True, inactivity_timeout=0.2):
        now = time.perf_counter()
        idle_since = None if method is not None else (idle_since or now)
        if method is not None:
            ev = json.loads(body)
            j = spikes.get((ev["labels"]["host"], parse_ts(ev["ts"])))
            if j is not None and j in sent and ev["type"] == "spike":
                lat.append(now - sent[j])
        if (not th.is_alive() and idle_since and now - idle_since > 3.0) or time.monotonic() > deadline:
            break
    th.join()
    conn.close()
    return lat, len(spikes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--pairs", type=int, default=3,
                    help="bare and harewatch drains of one reading per message, alternated (the median ratio is "
                         "shown: the bare consumer's own rate varies by a third from run to run here)")
    args = ap.parse_args()
    n = args.series
    with bench_vhost("bench.") as base, tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "pipeline.yaml"
        cfg.write_text(CONFIG)
        s = base.with_overrides(config=str(cfg))
        store = StateStore(s.redis_url, s.prefix)
        store.clear()
        try:
            declare(topology_from_config(load_config(s.config), s.prefix), s)
            hist = int(2.5 * DAY / STEP)
            # readings per message, points per series: every drain lasts several seconds, so the first checkpoint
            # (start-up excluded up to it) and the last (at most workers.detect.QUIET after the queue ran dry)
            # do not weigh on its rate
            cases = ((1, 200), (10, 1000), (100, 1000))
            pairs_extra = (args.pairs - 1) * 200
            spent = sum(p for _, p in cases + E2E_CASES) + pairs_extra + 2 * PARTITION_POINTS + 12 \
                + int(80_000 * 20 / n) + 1
            t = math.floor(time.time() / STEP) * STEP - (hist + spent) * STEP   # every reading in the past
            warm = make_readings("bench_load", n, t, hist) + make_readings("bench_hot", n, t, hist)
            t += hist * STEP
            t_warm = time.perf_counter()
            drain(s, store, messages(warm, 100), len(warm), which="bench_load,bench_hot", settle=True)
            warm_s = time.perf_counter() - t_warm
            rows = []
            for per_msg, pts in cases:
                pairs = []
                for _ in range(args.pairs if per_msg == 1 else 1):
                    rs = make_readings("bench_load", n, t, pts, seed=per_msg)
                    t += pts * STEP
                    msgs = messages(rs, per_msg)
                    bare = bare_drain(s, [b for _, b in msgs]) * per_msg
                    pairs.append((bare, drain(s, store, msgs, len(rs), settle=True)))
                rows.append((per_msg, len(rs), pairs))
            e2e = []
            for per_msg, pts in E2E_CASES:
                rs = make_readings("bench_load", n, t, pts, seed=per_msg + 1)
                t += pts * STEP
                msgs = messages(rs, per_msg)
                e2e.append((per_msg, len(rs), bare_end_to_end(s, [b for _, b in msgs], per_msg),
                            end_to_end(s, store, msgs, len(rs))))
            parts = []
            for workers in (1, 2):
                rs = make_readings("bench_hot", n, t, PARTITION_POINTS, seed=workers)
                t += PARTITION_POINTS * STEP
                parts.append((workers, drain(s, store, messages(rs, 1), len(rs), workers, which="bench_hot",
                                             settle=True)))
            sustained = e2e[1][3]
            p = start_worker(s, ["--detect", "bench_load"], "bench-detect-latency.log")
            try:
                wait_consuming(s, "detect.bench_load")
                lat, injected = latency(s, n, t, sustained / 2)
            finally:
                stop_worker(p)
        finally:
            store.clear()
    print(f"detection benchmark: {n:,} series, one detection worker ({IMPLEMENTATION} detector), on this 2-core "
          f"machine with its broker")
    print(f"warm-up: {len(warm):,} readings of history in {warm_s:.1f} s")
    print()
    print("drain of a preloaded queue (start-up excluded), beside a bare pika consumer of the same messages")
    print(f"{'readings per message':>20} {'readings':>9} {'bare r/s':>10} {'harewatch r/s':>14} {'ratio':>6}")
    for per_msg, cnt, pairs in rows:
        b, h = sorted(pairs, key=lambda p: p[1] / p[0])[len(pairs) // 2]     # the median pair
        spread = "" if len(pairs) == 1 else \
            f"  median of {len(pairs)} pairs; ratios " + ", ".join(f"{hh / bb:.2f}" for bb, hh in pairs)
        print(f"{per_msg:>20} {cnt:>9,} {b:>10,.0f} {h:>14,.0f} {h / b:>6.2f}{spread}")
    print()
    print("end to end: published with 1,000 messages in flight while the worker runs")
    print(f"{'readings per message':>20} {'readings':>9} {'bare r/s':>10} {'harewatch r/s':>14} {'ratio':>6}")
    for per_msg, cnt, b, h in e2e:
        print(f"{per_msg:>20} {cnt:>9,} {b:>10,.0f} {h:>14,.0f} {h / b:>6.2f}")
    print()
    print("a metric with 2 partitions, one reading per message, drained by")
    for workers, rate in parts:
        print(f"{workers:>3} worker{'s' if workers > 1 else ' '} {rate:>10,.0f} readings/s")
    print()
    if lat:
        lat.sort()
        p99 = lat[min(len(lat) - 1, int(math.ceil(0.99 * len(lat))) - 1)]
        print(f"publish-to-anomaly latency at {sustained / 2:,.0f} readings/s (half the sustained rate): "
              f"p50 {statistics.median(lat) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, {len(lat)} of {injected} spikes")
    else:
        print("publish-to-anomaly latency: no spike came back")


if __name__ == "__main__":
    main()
