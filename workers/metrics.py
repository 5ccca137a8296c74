"""Prometheus metrics of the workers (filled in by every worker type)."""
from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.readings = Counter("harewatch_readings_consumed_total", "Readings parsed from detect queues",
                                registry=registry)
        self.invalid = Counter("harewatch_readings_invalid_total", "Messages sent to readings.invalid",
                               ["reason"], registry=registry)
        self.anomalies = Counter("harewatch_anomalies_total", "Anomaly events published", ["type"],
                                 registry=registry)
        self.notifications = Counter("harewatch_notifications_total", "Notifications by channel and outcome",
                                     ["channel", "outcome"], registry=registry)
        self.batch_seconds = Histogram("harewatch_detection_batch_seconds",
                                       "Time from a batch's first message to its ack", registry=registry,
                                       buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))


_default: Metrics | None = None


def default() -> Metrics:
    global _default
    if _default is None:
        _default = Metrics()
    return _default


def record_batch(res: Any, seconds: float) -> None:
    m = default()
    m.readings.inc(res.readings)
    for inv in res.invalid:
        m.invalid.labels(inv.error.reason).inc()
    for ev in res.events:
        m.anomalies.labels(ev.type).inc()
    m.batch_seconds.observe(seconds)


def notification(channel: str, outcome: str) -> None:
    default().notifications.labels(channel, outcome).inc()
