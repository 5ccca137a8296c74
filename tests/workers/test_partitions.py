"""A partitioned metric: series hashed to partitions, workers sharing them, failover without loss."""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pika
import pytest

from harewatch.broker.declare import declare
from harewatch.broker.topology import Names, topology_from_config
from harewatch.messages import fingerprint
from harewatch.routing.loader import load_full_config
from harewatch.workers.detection.detector import SeriesState
from harewatch.workers.store import StateStore
from tests.conftest import get_all, make_settings

pytestmark = [pytest.mark.broker]
CONFIG = """
metrics:
  hot: {{periods: none, interval: 1m, partitions: {n}}}
channels: [webhook]
"""


@pytest.fixture
def hot(vhost: str, tmp_path: Path) -> Any:
    def make(n: int) -> Any:
        cfg = tmp_path / f"hw{n}.yaml"
        cfg.write_text(CONFIG.format(n=n))
        s = make_settings(vhost, prefix=f"p{uuid.uuid4().hex[:6]}.", config=str(cfg))
        declare(topology_from_config(load_full_config(s.config), s.prefix), s)
        made.append(s)
        return s
    made: list[Any] = []
    yield make
    for s in made:
        StateStore(s.redis_url, s.prefix).clear()


def readings(hosts: int, points: int, t0: float) -> list[dict[str, Any]]:
    return [{"metric": "hot", "value": float(50 + (i % 7)), "ts": t0 + i * 60, "labels": {"host": f"h{h:02d}"}}
            for i in range(points) for h in range(hosts)]


def publish(s: Any, rs: list[dict[str, Any]]) -> None:
    """One reading per message, routing key <metric>.<host> as harewatch publish and collectd send it."""
    conn = pika.BlockingConnection(pika.URLParameters(s.amqp_url))
    ch = conn.channel()
    ch.confirm_delivery()
    for r in rs:
        ch.basic_publish(s.prefix + "readings", f"hot.{r['labels']['host']}", json.dumps(r).encode(),
                         pika.BasicProperties(content_type="application/json", delivery_mode=2))
    conn.close()


def test_a_series_always_lands_on_the_same_partition(hot: Any) -> None:
    s = hot(4)
    rs = readings(hosts=40, points=3, t0=time.time() - 3600)
    publish(s, rs)
    conn = pika.BlockingConnection(pika.URLParameters(s.amqp_url))
    ch = conn.channel()
    where: dict[str, set[int]] = {}
    total = 0
    for k in range(4):
        for method, _props, body in get_all(ch, Names(s.prefix).partition_queue("detect.hot", k), timeout=2):
            where.setdefault(method.routing_key, set()).add(k)
            total += 1
    conn.close()
    assert total == len(rs)                                   # every reading reached one partition
    assert all(len(ks) == 1 for ks in where.values()), where  # each series always the same one
    assert len({k for ks in where.values() for k in ks}) == 4  # and the series are spread over all four


def owners(s: Any) -> dict[str, str]:
    store = StateStore(s.redis_url, s.prefix)
    names = Names(s.prefix)
    qs = [names.partition_queue("detect.hot", k) for k in range(2)]
    got = store.r.mget([f"{s.prefix}hw:parts:{q}" for q in qs])
    return {q: v.decode() for q, v in zip(qs, got) if v}


def scored(s: Any, rs: list[dict[str, Any]]) -> int:
    store = StateStore(s.redis_url, s.prefix)
    fps = sorted({fingerprint("hot", r["labels"]) for r in rs})
    return sum(SeriesState.from_bytes(b).n for b in store.get_states(fps).values())


def wait(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.e2e
def test_two_workers_share_the_partitions_and_a_killed_ones_fail_over(hot: Any, worker_factory: Any) -> None:
    s = hot(2)
    args = ["--detect", "hot", "-Q", s.prefix + "harewatch.tasks"]
    a = worker_factory(s, *args, name="pa").start()
    b = worker_factory(s, *args, name="pb").start()
    wait(lambda: len(set(owners(s).values())) == 2, 30, "each worker to hold one partition")
    rs = readings(hosts=30, points=40, t0=time.time() - 3 * 3600)
    half = len(rs) // 2
    publish(s, rs[:half])
    wait(lambda: scored(s, rs) >= half // 2, 60, "the first readings to be scored")
    a.kill()                                                    # SIGKILL: its leases lapse, b takes over
    assert scored(s, rs) < len(rs)
    publish(s, rs[half:])
    wait(lambda: scored(s, rs) >= len(rs), 90, "every reading to be scored after the failover")
    assert scored(s, rs) == len(rs)                             # each exactly once: nothing lost, none twice
    assert len(owners(s)) == 2 and set(owners(s).values()) == {next(iter(owners(s).values()))}
    assert b.alive


def test_changing_the_number_of_partitions_is_reported_with_how_to_migrate(hot: Any, vhost: str,
                                                                           tmp_path: Path) -> None:
    s = hot(3)
    publish(s, readings(hosts=20, points=1, t0=time.time() - 600))
    cfg = tmp_path / "two.yaml"
    cfg.write_text(CONFIG.format(n=2))
    two = s.with_overrides(config=str(cfg))
    outcomes = declare(topology_from_config(load_full_config(two.config), two.prefix), two)
    drift = {o.name: o.drifts[0] for o in outcomes if o.status == "drift"}
    names = Names(s.prefix)
    assert set(drift) == {names.detect_queue("detect.hot"), names.partition_queue("detect.hot", 2)}
    assert (drift[names.detect_queue("detect.hot")].current, drift[names.detect_queue("detect.hot")].wanted[:2]) \
        == (3, "2:")
    assert "drain" in drift[names.partition_queue("detect.hot", 2)].wanted
    # the left-over partition gets nothing new; the two that remain get everything
    conn = pika.BlockingConnection(pika.URLParameters(s.amqp_url))
    ch = conn.channel()
    held = ch.queue_declare(names.partition_queue("detect.hot", 2), passive=True).method.message_count
    publish(s, readings(hosts=20, points=1, t0=time.time() - 300))
    assert ch.queue_declare(names.partition_queue("detect.hot", 2), passive=True).method.message_count == held
    conn.close()
