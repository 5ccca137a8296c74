"""The detection engine against real Redis: redelivered readings after a crash are recognised, in any order."""
from __future__ import annotations

import json
import time
from typing import Any, Callable

import pytest

from harewatch.messages import fingerprint
from harewatch.routing.loader import load_full_config
from harewatch.workers.detection.detector import SeriesState
from harewatch.workers.engine import Engine, InMessage
from harewatch.workers.store import StateStore

CONFIG = """
metrics:
  load: {periods: none, interval: 1m}
channels: [webhook]
"""
SERIES = {"metric": "load", "labels": {"host": "a"}}


@pytest.fixture
def esettings(config_settings: Callable[[str, str], Any]) -> Any:
    return config_settings("en", CONFIG)


def message(i: int, t0: float, redelivered: bool = False) -> InMessage:
    return InMessage(json.dumps({**SERIES, "value": 10.0 + i % 3, "ts": t0 + 60 * i}).encode(), "application/json",
                     redelivered=redelivered)


def test_readings_redelivered_after_newer_ones_are_duplicates_not_late(esettings: Any) -> None:
    """A worker saved points 0-99 and died before acknowledging 90-99; the broker (a quorum queue may do
    this) delivers the next worker 100-179 first, then 90-99 again: those are no late readings to count
    and score again, while a late reading nobody scored yet still is one."""
    store = StateStore(esettings.redis_url, esettings.prefix)
    cfg = load_full_config(esettings.config)
    t0 = time.time() - 86400
    first = Engine(cfg, store)
    first.process([message(i, t0) for i in range(100)])
    first.persist()
    assert store.readings_total() == 100
    second = Engine(cfg, store)
    second.process([message(i, t0) for i in range(100, 180)])
    res = second.process([message(i, t0, redelivered=True) for i in range(90, 100)])
    assert (res.duplicates, res.scored, res.late, res.events) == (10, 0, 0, [])
    late = second.process([message(178, t0 + 30, redelivered=True)])   # never seen: between two saved points
    assert (late.duplicates, late.scored) == (0, 1)
    second.persist()
    assert store.readings_total() == 181
    fp = fingerprint("load", SERIES["labels"])
    assert SeriesState.from_bytes(store.get_states([fp])[fp]).n == 180


def test_a_time_sent_twice_is_counted_as_a_duplicate_on_metrics(esettings: Any) -> None:
    """An agent that catches up after a stall (collectd does) may send one series' time twice: the second
    is dropped, and /metrics says how many were, instead of the readings going missing without a trace."""
    from prometheus_client import REGISTRY

    from harewatch.workers import metrics
    engine = Engine(load_full_config(esettings.config), StateStore(esettings.redis_url, esettings.prefix))
    t0 = time.time() - 86400
    before = REGISTRY.get_sample_value("harewatch_readings_duplicate_total") or 0.0
    metrics.record_batch(engine.process([message(i, t0) for i in range(20)]), 0.01)
    res = engine.process([message(i, t0) for i in (18, 19, 20)])
    metrics.record_batch(res, 0.01)
    assert (res.duplicates, res.scored) == (2, 1)
    assert REGISTRY.get_sample_value("harewatch_readings_duplicate_total") == before + 2
