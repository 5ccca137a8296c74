"""Worker start-up hooks: the /metrics + /healthz endpoint, and the pipeline watching itself."""
from __future__ import annotations

import functools
import json
import logging
import time
from typing import Any

from celery import shared_task
from celery.signals import worker_ready

from harewatch.workers import runtime
from harewatch.workers.events import publish_events

log = logging.getLogger("harewatch.health")


def health_report(app: Any) -> dict[str, Any]:
    """What /healthz answers: Redis and the broker reachable from this worker."""
    s = runtime.settings()
    out: dict[str, Any] = {"status": "ok"}
    try:
        runtime.store().r.ping()
        out["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        out["redis"], out["status"] = f"error: {exc}", "degraded"
    try:
        with app.connection_for_write() as c:
            c.ensure_connection(max_retries=1, timeout=3)
        out["broker"] = "ok"
    except Exception as exc:  # noqa: BLE001
        out["broker"], out["status"] = f"error: {exc}", "degraded"
    out["prefix"] = s.prefix
    return out


@worker_ready.connect
def _start_metrics(sender: Any = None, **_: Any) -> None:
    s = runtime.settings()
    if not s.metrics_port:
        return
    from prometheus_client import REGISTRY

    from harewatch.workers import metrics
    metrics.default()
    try:
        REGISTRY.register(metrics.QueueDepthCollector(s.management_url, s.vhost, s.prefix))
    except ValueError:
        pass
    metrics.serve(s.metrics_port, functools.partial(health_report, sender.app))
    log.info("metrics and health on :%d/metrics and /healthz", s.metrics_port)


@shared_task(name="harewatch.self_check", bind=True, ignore_result=True)
def self_check(self: Any) -> list[str]:
    """Alert on the pipeline itself: no readings for too long, or a dead-letter queue growing."""
    from harewatch.broker.management import Management
    from harewatch.broker.topology import topology_from_config
    from harewatch.messages import AnomalyEvent

    cfg = runtime.config()
    quiet_after, team = cfg.selfwatch.no_readings_after, cfg.selfwatch.team
    store = runtime.store()
    r, ns = store.r, store.ns
    now = time.time()
    events: list[AnomalyEvent] = []
    total = store.readings_total()
    last = json.loads(r.get(ns + "selfwatch:readings") or "null")
    if last is None or total != last["count"]:
        r.set(ns + "selfwatch:readings", json.dumps({"count": total, "changed_at": now, "alerted": False}))
    elif total and now - last["changed_at"] > quiet_after and not last.get("alerted"):
        events.append(AnomalyEvent(series="harewatch", metric="harewatch_readings", labels={"component": "detect"},
                                   type="missing_data", severity="critical", ts=now, value=None, expected=None,
                                   lower=None, upper=None, score=0.99,
                                   team=team, model={"method": "selfwatch"}))
        last["alerted"] = True
        r.set(ns + "selfwatch:readings", json.dumps(last))
    s = runtime.settings()
    topo = topology_from_config(cfg, s.prefix)
    try:
        depths = {q["name"]: q.get("messages", 0) or 0 for q in Management(s.management_url, timeout=5).queues(s.vhost)}
    except Exception:  # noqa: BLE001
        depths = {}
    before = json.loads(r.get(ns + "selfwatch:dlq") or "{}")
    for q in topo.dlqs:
        n = depths.get(q)
        if n is not None and n > before.get(q, 0):
            events.append(AnomalyEvent(series=f"harewatch-{q}", metric="harewatch_dead_letters",
                                       labels={"queue": q}, type="spike", severity="warning", ts=now, value=float(n),
                                       expected=float(before.get(q, 0)), lower=None, upper=None,
                                       score=0.99, team=team, model={"method": "selfwatch"}))
    if depths:
        r.set(ns + "selfwatch:dlq", json.dumps({q: depths.get(q, 0) for q in topo.dlqs}))
    publish_events(self.app, events)
    return [e.metric for e in events]
