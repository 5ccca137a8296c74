"""The router consumer: a Celery consumer bootstep on ``alerts.route`` (``--route``).

Anomaly events are recorded in Redis and acked; a one-second timer flushes
due groups (one router at a time holds a Redis lease to do so) and publishes
each notification as a ``harewatch.notify`` Celery task message to the
``alerts`` exchange with key ``<channel>.<team>.<type>.<severity>``, with
publisher confirms, before the notification log records it.  A message that
is not an anomaly event is rejected and so dead-lettered to
``alerts.route.dlq``.
"""
from __future__ import annotations

import functools
import logging
import uuid
from typing import Any

import redis
from kombu import Consumer

from harewatch.errors import InvalidInput
from harewatch.messages import AnomalyEvent, Notification
from harewatch.workers import runtime
from harewatch.routing.dispatch import Router
from harewatch.workers.steps import TimedConsumerStep

log = logging.getLogger("harewatch.route")
TICK = 1.0
LEASE_MS = 5000

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""


def send_notification(app: Any, routing_key: str, note: Notification) -> None:
    """Publish one notification task to the alerts exchange, confirmed, with the notification id as task id."""
    names = runtime.names()
    app.send_task("harewatch.notify", kwargs={"notification": note.to_dict()}, task_id=note.id,
                  exchange=names.alerts, routing_key=routing_key, retry=True,
                  retry_policy={"max_retries": 5, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 3})


class RouteConsumer(TimedConsumerStep):
    name = "harewatch.route"
    interval = TICK

    def __init__(self, parent: Any, route: bool = False, **kwargs: Any) -> None:
        self.app = parent.app
        self.enabled = bool(route)
        self.router: Router | None = None
        self.token = uuid.uuid4().hex
        super().__init__(parent, **kwargs)

    def get_consumers(self, channel: Any) -> list[Consumer]:
        from harewatch.broker.topology import topology_from_config
        cfg = runtime.config()
        s = runtime.settings()
        if self.router is None:
            self.router = Router(cfg.routing, s.redis_url, s.prefix)
        q = topology_from_config(cfg, s.prefix).queue(runtime.names().alerts_route)
        log.info("router consuming %s", q.name)
        return [Consumer(channel, queues=[q], on_message=self.on_message, prefetch_count=100, no_ack=False)]

    def on_message(self, message: Any) -> None:
        assert self.router is not None
        try:
            event = AnomalyEvent.from_json(message.body)
        except (ValueError, TypeError, InvalidInput) as exc:
            log.warning("rejecting message on alerts.route: %s", exc)
            message.reject(requeue=False)   # dead-lettered to alerts.route.dlq
            return
        try:
            self.router.receive(event)
        except redis.RedisError as exc:
            log.warning("Redis unavailable, event requeued: %s", exc)
            message.requeue()
            return
        message.ack()

    def on_tick(self) -> None:
        if self.router is None:
            return
        try:
            r = self.router.r
            if not r.eval(_RENEW, 1, self.router.k("leader"), self.token, LEASE_MS):
                return   # another router flushes
            self.router.tick(functools.partial(send_notification, self.app))
        except Exception:  # noqa: BLE001 - the next tick tries again; nothing was recorded as sent
            log.exception("router tick failed")

