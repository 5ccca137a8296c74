"""What the benchmarks share: a vhost of their own, worker processes, preloading queues, a bare consumer."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import pika

from harewatch.broker.connection import pika_parameters
from harewatch.broker.management import Management
from harewatch.broker.publish import ConfirmedPublisher, OutMessage
from harewatch.broker.topology import Names
from harewatch.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def bench_vhost(prefix: str = "bench.") -> Iterator[Settings]:
    """Settings on a vhost of the benchmark's own (deleted afterwards) and a unique Redis prefix."""
    base = load_settings()
    mgmt = Management(base.management_url)
    vhost = f"harewatch-bench-{uuid.uuid4().hex[:6]}"
    mgmt.create_vhost(vhost)
    try:
        yield base.with_overrides(amqp_url=base.amqp_url.rsplit("/", 1)[0] + "/" + vhost,
                                  prefix=f"{prefix.rstrip('.')}{uuid.uuid4().hex[:4]}.")
    finally:
        mgmt.delete_vhost(vhost)


def start_worker(settings: Settings, args: Sequence[str], log_name: str) -> subprocess.Popen:
    """``celery -A harewatch.workers worker ARGS`` on these settings; its log in .pytest_cache/."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMQP_", "HAREWATCH_", "REDIS_"))}
    env.update({"AMQP_URL": settings.amqp_url, "REDIS_URL": settings.redis_url, "HAREWATCH_CONFIG": settings.config,
                "HAREWATCH_PREFIX": settings.prefix})
    log_dir = ROOT / ".pytest_cache"
    log = open(log_dir / log_name, "w") if log_dir.exists() else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "harewatch.workers", "worker", *args,
                             "-Q", Names(settings.prefix).tasks, "--concurrency", "1", "--without-mingle",
                             "--without-gossip", "--loglevel", "WARNING"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop_worker(p: subprocess.Popen) -> None:
    if p.poll() is None:
        os.killpg(p.pid, 15)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            p.wait()


def wait_consuming(s: Settings, queue: str, proc: subprocess.Popen | None = None, timeout: float = 60.0) -> None:
    """Until a consumer is on ``queue`` (unprefixed name); exits if ``proc``, the worker, died first."""
    conn = pika.BlockingConnection(pika_parameters(s))
    ch = conn.channel()
    deadline = time.monotonic() + timeout
    while ch.queue_declare(s.prefix + queue, passive=True).method.consumer_count < 1:
        if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
            raise SystemExit(f"no worker consumes {queue} (logs in .pytest_cache/)")
        time.sleep(0.05)
    conn.close()


def preload(settings: Settings, exchange: str, messages: Sequence[tuple[str, bytes]], in_flight: int = 1000) -> float:
    """Publish (routing key, body) pairs, ``in_flight`` unconfirmed at a time; returns the seconds taken."""
    pub = ConfirmedPublisher(settings)
    t0 = time.perf_counter()
    try:
        for i in range(0, len(messages), in_flight):
            pub.publish([OutMessage(exchange, key, body, {"content_type": "application/json"})
                         for key, body in messages[i:i + in_flight]])
    finally:
        pub.close()
    return time.perf_counter() - t0


def bare_drain(settings: Settings, bodies: Sequence[bytes], prefetch: int = 2000) -> float:
    """Messages/s a bare pika consumer (one multiple ack per 500) drains the bodies at, preloaded on a
    quorum queue of its own: the broker's pace on this machine, now."""
    q = f"{settings.prefix}bare.{uuid.uuid4().hex[:6]}"
    conn = pika.BlockingConnection(pika_parameters(settings))
    ch = conn.channel()
    ch.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum"})
    preload(settings, "", [(q, b) for b in bodies])
    ch.basic_qos(prefetch_count=prefetch)
    n = len(bodies)
    got = 0
    t0 = 0.0

    def on_message(c: Any, method: Any, props: Any, body: bytes) -> None:
        nonlocal got, t0
        if not got:
            t0 = time.perf_counter()
        got += 1
        if got % 500 == 0 or got == n:
            c.basic_ack(method.delivery_tag, multiple=True)
        if got == n:
            c.stop_consuming()

    ch.basic_consume(q, on_message)
    ch.start_consuming()
    rate = (n - 1) / (time.perf_counter() - t0)
    ch.queue_delete(q)
    conn.close()
    return rate
