"""The router in a Celery worker (``--route``): intake in a thread, flushing in a process of its own.

Intake consumes ``alerts.route`` in batches (:class:`~harewatch.broker.consume.BatchConsumer`): up to
1,000 anomaly events are parsed and merged into Redis by one script call, which runs while the next
batch is parsed, then acknowledged with one ``basic.ack`` (multiple). A message that is not an
anomaly event is rejected, so the queue dead-letters it to ``alerts.route.dlq``; a Redis failure
acknowledges nothing, and the batch comes back after a reconnect.

The flusher, in a process of its own (its own GIL and connections), wakes when the earliest group
is due (at least every half second), holds a Redis lease so one router at a time flushes, and
publishes the
notifications of all due groups at once as ``harewatch.notify`` Celery task messages to the ``alerts``
exchange (key ``<channel>.<team>.<type>.<severity>``), waiting for every publisher confirm before
the notification log records them. So a flush, however large, never holds up intake.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from typing import Any, Sequence

from celery import bootsteps

from harewatch.broker.consume import BatchConsumer, Delivery, backoff, run_in_thread
from harewatch.broker.declare import declare_queues
from harewatch.broker.publish import ConfirmedPublisher, OutMessage
from harewatch.errors import InvalidInput
from harewatch.messages import AnomalyEvent, Notification
from harewatch.routing.dispatch import Router
from harewatch.routing.store import PendingWrite
from harewatch.settings import Settings
from harewatch.workers import runtime
from harewatch.workers.events import task_message

log = logging.getLogger("harewatch.route")
LEASE_MS = 5000
MAX_SLEEP = 0.5           # the flusher looks for due groups at least this often (seconds)
PREFETCH, MAX_BATCH, MAX_WAIT = 4000, 1000, 0.02

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""


def notification_message(app: Any, routing_key: str, note: Notification) -> OutMessage:
    """A notification as the ``harewatch.notify`` Celery task message to the alerts exchange, with the
    notification id as task id, so a redelivery or a repeated flush is recognisable."""
    return task_message(app, "harewatch.notify", note.id, runtime.names().alerts, routing_key,
                        kwargs={"notification": note.to_dict()}, summary=f"notification {note.id}")


class Intake:
    """Batches of ``alerts.route`` deliveries into the router's state; acked once recorded.

    One batch is in flight in Redis while the next is parsed: a batch is acknowledged when its write
    returned, before the next write is sent, so acks stay in delivery order."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.pending: tuple[PendingWrite, int] | None = None    # the write in flight, its batch's last tag

    def on_batch(self, consumer: BatchConsumer, batch: list[Delivery]) -> None:
        events: list[tuple[AnomalyEvent, bytes]] = []
        last = 0       # the last accepted delivery (acking a rejected tag, even with multiple, is an error)
        for d in batch:
            try:
                events.append((AnomalyEvent.from_json(d.body), d.body))
                last = d.tag
            except Exception as exc:  # noqa: BLE001 - whatever is wrong with it, it is not an anomaly event
                log.warning("rejecting message on %s: %s", d.queue, exc if isinstance(exc, InvalidInput)
                            else f"not an anomaly event ({type(exc).__name__}: {exc})")
                consumer.reject(d.tag)    # dead-lettered to alerts.route.dlq
        self.settle(consumer)
        if events:
            pending, _ = self.router.receive_started(events)
            self.pending = (pending, last)

    def settle(self, consumer: BatchConsumer) -> None:
        """Wait for the write in flight and acknowledge its batch (a Redis failure raises: nothing acked)."""
        if self.pending is None:
            return
        pending, tag = self.pending
        self.pending = None
        pending.wait()
        consumer.ack_through(tag)

    def on_tick(self, consumer: BatchConsumer) -> None:
        self.settle(consumer)

    def on_stop(self, consumer: BatchConsumer) -> None:
        self.settle(consumer)

    def on_reset(self) -> None:
        if self.pending is not None:
            self.pending[0].abandon()     # its batch goes back to the queue unacknowledged
            self.pending = None


class Flusher:
    """Flushes due groups while it holds the router lease; sleeps until the next group is due."""

    def __init__(self, router: Router, app: Any) -> None:
        self.router = router
        self.app = app
        self.publisher = ConfirmedPublisher(runtime.settings())
        self.token = uuid.uuid4().hex
        self.stopping = threading.Event()

    def send(self, notes: Sequence[tuple[str, Notification]]) -> None:
        self.publisher.publish([notification_message(self.app, key, note) for key, note in notes])

    def run(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            wait = MAX_SLEEP
            try:
                if self.router.r.eval(_RENEW, 1, self.router.k("leader"), self.token, LEASE_MS):
                    self.router.tick(self.send)
                    nxt = self.router.next_due()
                    if nxt is not None:
                        wait = min(MAX_SLEEP, max(0.0, nxt - time.time()))
                else:
                    wait = 1.0        # another router flushes; take over if its lease lapses
                failures = 0
            except Exception:  # noqa: BLE001 - the next round tries again; nothing was logged as sent
                failures += 1
                wait = backoff(failures)
                log.exception("router flush failed; trying again in %.1fs", wait)
            self.stopping.wait(wait)
        self.publisher.close()


def run_flusher(settings: Settings, worker_pid: int) -> None:
    """The flusher in a process of its own (its own GIL, so a large flush takes nothing from intake).
    SIGTERM stops it after the flush in progress; it also stops when the worker that started it is gone
    (even killed with SIGKILL)."""
    import signal

    from harewatch.logs import setup_logging
    from harewatch.workers.celery_app import create_app

    runtime.use(settings)
    setup_logging(settings)
    cfg = runtime.config()
    flusher = Flusher(Router(cfg.routing, settings.redis_url, settings.prefix), create_app(settings, cfg))
    signal.signal(signal.SIGTERM, lambda *_: flusher.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: flusher.stopping.set())

    def watch() -> None:
        while not flusher.stopping.wait(0.5):
            if os.getppid() != worker_pid:
                flusher.stopping.set()

    threading.Thread(target=watch, name="harewatch-flusher-watch", daemon=True).start()
    flusher.run()


class RouterService(bootsteps.StartStopStep):
    """``--route``: the router's intake thread and flusher process, started and stopped with the worker."""

    name = "harewatch.route"

    def __init__(self, parent: Any, route: bool = False, **kwargs: Any) -> None:
        self.enabled = bool(route)
        self.app = parent.app
        self.consumer: BatchConsumer | None = None
        self.intake: threading.Thread | None = None
        self.flusher: Any = None
        super().__init__(parent, **kwargs)

    def start(self, parent: Any) -> None:
        import multiprocessing

        from harewatch.broker.connection import pika_parameters
        from harewatch.broker.topology import topology_from_config

        settings, cfg = runtime.settings(), runtime.config()
        queue = runtime.names().alerts_route
        topology = topology_from_config(cfg, settings.prefix)
        self.consumer = BatchConsumer(lambda: pika_parameters(settings), [queue],
                                      Intake(Router(cfg.routing, settings.redis_url, settings.prefix)),
                                      prefetch=PREFETCH, max_batch=MAX_BATCH, max_wait=MAX_WAIT, name="router",
                                      on_connect=lambda: declare_queues(settings, [topology.queue(queue)]))
        self.intake = run_in_thread(self.consumer)
        ctx = multiprocessing.get_context("spawn")     # never fork a threaded worker
        self.flusher = ctx.Process(target=run_flusher, args=(settings, os.getpid()), name="harewatch-flusher",
                                   daemon=True)
        self.flusher.start()

    def stop(self, parent: Any) -> None:
        if self.consumer is not None:
            self.consumer.stop()
        if self.flusher is not None and self.flusher.is_alive():
            self.flusher.terminate()          # SIGTERM: it finishes the flush in progress
        if self.intake is not None:
            self.intake.join(30)
        if self.flusher is not None:
            self.flusher.join(30)
            if self.flusher.is_alive():
                self.flusher.kill()
        self.intake = self.flusher = None
