"""Publishing client benchmark: harewatch's Publisher beside a bare pika loop, same broker, same readings.

    python -m bench.publisher [--readings 20000]

Both sides publish persistent messages with publisher confirms to a durable
quorum queue in a vhost of their own; the bare loop is what an application
would write by hand (BlockingConnection, confirm_delivery, basic_publish).
"""
from __future__ import annotations

import argparse
import time
import uuid

import pika

from harewatch.messages import Reading
from harewatch.settings import load_settings
from harewatch.producers.formats import encode_batch
from harewatch.producers.publisher import Publisher
from harewatch.broker.management import Management


def readings(n: int) -> list[Reading]:
    t0 = time.time() - n
    return [Reading("bench_load", float(i % 97), t0 + i, {"host": f"h{i % 50}"}) for i in range(n)]


def bare(url: str, exchange: str, rs: list[Reading], per_msg: int) -> float:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.confirm_delivery()
    props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
    t0 = time.perf_counter()
    for i in range(0, len(rs), per_msg):
        chunk = rs[i:i + per_msg]
        ch.basic_publish(exchange, "bench_load.h", encode_batch(chunk), props, mandatory=True)
    el = time.perf_counter() - t0
    conn.close()
    return len(rs) / el


def client(settings, exchange: str, rs: list[Reading], per_msg: int) -> float:
    t0 = time.perf_counter()
    with Publisher(settings=settings, exchange=exchange, batch_size=per_msg, linger=60) as pub:
        if per_msg == 1:
            for r in rs:
                pub.publish(r)
        else:
            pub.publish(rs)
    return len(rs) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--readings", type=int, default=20_000)
    args = ap.parse_args()
    base = load_settings()
    mgmt = Management(base.management_url)
    vhost = f"harewatch-bench-pub-{uuid.uuid4().hex[:6]}"
    mgmt.create_vhost(vhost)
    try:
        url = base.amqp_url.rsplit("/", 1)[0] + "/" + vhost
        settings = base.with_overrides(amqp_url=url)
        conn = pika.BlockingConnection(pika.URLParameters(url))
        ch = conn.channel()
        ch.exchange_declare("readings", "topic", durable=True)
        ch.queue_declare("sink", durable=True, arguments={"x-queue-type": "quorum"})
        ch.queue_bind("sink", "readings", "#")
        conn.close()
        def purge() -> None:
            c = pika.BlockingConnection(pika.URLParameters(url))
            c.channel().queue_purge("sink")
            c.close()

        rows = []
        for per_msg, n in ((1, min(args.readings, 5000)), (100, args.readings)):
            rs = readings(n)
            b, c = [], []
            for _ in range(3):   # alternate, each on an empty queue; median of three
                purge()
                b.append(bare(url, "readings", rs, per_msg))
                purge()
                c.append(client(settings, "readings", rs, per_msg))
            rows.append((per_msg, n, sorted(b)[1], sorted(c)[1]))
        print("publishing client benchmark (persistent, confirmed, quorum queue, same broker)")
        print(f"{'readings/message':>16} {'readings':>9} {'bare pika r/s':>14} {'Publisher r/s':>14} {'ratio':>6}")
        for per_msg, n, b, c in rows:
            print(f"{per_msg:>16} {n:>9,} {b:>14,.0f} {c:>14,.0f} {c / b:>6.2f}")
    finally:
        mgmt.delete_vhost(vhost)


if __name__ == "__main__":
    main()
