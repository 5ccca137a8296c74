"""Prometheus metrics of the workers (filled in by every worker type)."""
from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.readings = Counter("harewatch_readings_consumed_total", "Readings parsed from detect queues",
                                registry=registry)
        self.duplicates = Counter("harewatch_readings_duplicate_total",
                                  "Readings dropped because their series already had one at that timestamp "
                                  "(a redelivery, or an agent sending one time twice)", registry=registry)
        self.invalid = Counter("harewatch_readings_invalid_total", "Messages sent to readings.invalid",
                               ["reason"], registry=registry)
        self.rejected = Counter("harewatch_readings_rejected_total",
                                "Readings of new series not scored: their metric has its max_series",
                                ["metric"], registry=registry)
        self.retired = Counter("harewatch_series_retired_total",
                               "Series retired after reporting nothing for their retire_after", ["metric"],
                               registry=registry)
        self.anomalies = Counter("harewatch_anomalies_total", "Anomaly events published", ["type"],
                                 registry=registry)
        self.notifications = Counter("harewatch_notifications_total", "Notifications by channel and outcome",
                                     ["channel", "outcome"], registry=registry)
        self.latency = Histogram("harewatch_anomaly_latency_seconds",
                                 "From a reading's event time to its anomaly being published", registry=registry,
                                 buckets=(.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300))
        self.notify_latency = Histogram("harewatch_notification_latency_seconds",
                                        "From the anomaly's event time to the notification being delivered",
                                        ["channel"], registry=registry,
                                        buckets=(.5, 1, 5, 15, 30, 60, 120, 300, 900, 3600))
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
    m.readings.inc(res.scored + res.late)   # redeliveries are duplicates, not new readings
    m.duplicates.inc(res.duplicates)
    for inv in res.invalid:
        m.invalid.labels(inv.error.reason).inc()
    for metric, n in res.rejected.items():
        m.rejected.labels(metric).inc(n)
    import time
    now = time.time()
    for ev in res.events:
        m.anomalies.labels(ev.type).inc()
        if now - ev.ts < 3600:   # live data; a replay of history would only skew the histogram
            m.latency.observe(max(0.0, now - ev.ts))
    m.batch_seconds.observe(seconds)


def notification(channel: str, outcome: str) -> None:
    default().notifications.labels(channel, outcome).inc()


class QueueDepthCollector:
    """harewatch_queue_messages{queue,state}: every harewatch queue's depth, read from the management API."""

    def __init__(self, management_url: str, vhost: str, prefix: str) -> None:
        self.url, self.vhost, self.prefix = management_url, vhost, prefix

    def collect(self):  # noqa: ANN201 - prometheus collector protocol
        from prometheus_client.core import GaugeMetricFamily

        from harewatch.broker.management import Management
        g = GaugeMetricFamily("harewatch_queue_messages", "Messages in each harewatch queue (management API)",
                              labels=["queue", "state"])
        try:
            for q in Management(self.url, timeout=5).queues(self.vhost):
                if self.prefix and not q["name"].startswith(self.prefix):
                    continue
                g.add_metric([q["name"], "ready"], q.get("messages_ready", 0) or 0)
                g.add_metric([q["name"], "unacked"], q.get("messages_unacknowledged", 0) or 0)
        except Exception:  # noqa: BLE001 - a scrape must not fail because the management API is away
            pass
        yield g


def serve(port: int, health: Any, registry: CollectorRegistry = REGISTRY) -> Any:
    """/metrics (Prometheus text) and /healthz (JSON, 200 or 503) on ``port``, in a daemon thread."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path.startswith("/metrics"):
                body, status, ctype = generate_latest(registry), 200, CONTENT_TYPE_LATEST
            elif self.path.startswith("/healthz"):
                report = health()
                status = 200 if report.get("status") == "ok" else 503
                body, ctype = json.dumps(report).encode(), "application/json"
            else:
                body, status, ctype = b"see /metrics and /healthz\n", 404, "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: Any) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="harewatch-metrics").start()
    return server
