"""Consuming at the broker's pace: a pika consumer that hands deliveries over in batches.

Celery consumes through kombu and py-amqp inside its event loop, which costs
about 80 us per message here; pika's blocking connection drains the same
queue at 25-40 us per message. Detection and the router consume their queues
with :class:`BatchConsumer`, in a thread of the Celery worker, and acknowledge
with one ``basic.ack`` (multiple) per batch once everything a batch caused is
saved and confirmed. pika keeps the connection; the deliveries themselves are
read off the wire by :class:`~harewatch.broker.frames.DeliveryReader` (half
of pika's 20 us a message was decoding frames into objects). A handler that raises acknowledges nothing: the
connection is closed (the broker requeues every unacknowledged message) and
opened again after a back-off.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from types import MappingProxyType
from typing import Any, Callable, Mapping, NamedTuple, Protocol, Sequence

log = logging.getLogger("harewatch.consume")

NO_HEADERS: Mapping[str, Any] = MappingProxyType({})


class Delivery(NamedTuple):
    """One message as consumed: its delivery tag on the consumer's channel, body and properties.

    Immutable; a named tuple rather than a frozen dataclass because one is made per message read (a frozen
    dataclass costs 1.8 us to build here, as much as reading the message off the wire)."""

    tag: int
    body: bytes
    queue: str
    exchange: str = ""
    routing_key: str = ""
    content_type: str | None = None
    headers: Mapping[str, Any] = NO_HEADERS
    timestamp: float | None = None
    redelivered: bool = False


class Handler(Protocol):
    """What a :class:`BatchConsumer` drives. ``on_batch`` and ``on_tick`` run in the consumer's thread and
    settle deliveries through ``consumer.ack_through`` / ``consumer.reject``; raising acknowledges nothing."""

    def on_batch(self, consumer: "BatchConsumer", batch: list[Delivery]) -> None: ...

    def on_tick(self, consumer: "BatchConsumer") -> None: ...

    def on_stop(self, consumer: "BatchConsumer") -> None: ...

    def on_reset(self) -> None: ...


class BatchConsumer:
    """Consume ``queues`` on one channel with ``prefetch``; call the handler with up to ``max_batch``
    deliveries at once, at the latest ``max_wait`` seconds after the first of them arrived, and its
    ``on_tick`` every ``tick`` seconds, until :meth:`stop`."""

    def __init__(self, parameters: Callable[[], Any], queues: Sequence[str], handler: Handler, *,
                 prefetch: int = 2000, max_batch: int = 500, max_wait: float = 0.02, tick: float = 0.25,
                 name: str = "consumer", on_connect: Callable[[], None] | None = None,
                 max_bytes: int | None = None) -> None:
        self.parameters = parameters
        self.queues = list(queues)
        self.handler = handler
        self.prefetch = prefetch
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.max_bytes = max_bytes        # a batch also ends at this many body bytes (big messages, low latency)
        self.buffered = 0
        self.tick = tick
        self.name = name
        self.on_connect = on_connect      # runs before each connection (e.g. declares the queues)
        self.stopping = threading.Event()
        self.channel: Any = None
        self.buffer: list[Delivery] = []
        self.incoming: list[Delivery] = []   # deliveries read off the wire, not yet batched
        self.reader: Any = None              # the connection's DeliveryReader (None: pika's path only)
        self.first_at = 0.0
        self.failures = 0

    # -- settling (from the handler, in this thread) ----------------------------------
    def ack_through(self, tag: int) -> None:
        """Acknowledge every delivery up to and including ``tag`` (one ``basic.ack`` multiple)."""
        self.channel.basic_ack(tag, multiple=True)

    def reject(self, tag: int) -> None:
        """Reject one delivery without requeueing: the queue dead-letters it (or drops it if it has no DLX)."""
        self.channel.basic_reject(tag, requeue=False)

    # -- running -----------------------------------------------------------------------
    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        """Consume until :meth:`stop`; reconnect after any failure with a back-off (0.5 s up to 30 s)."""
        while not self.stopping.is_set():
            try:
                self._consume()
                self.failures = 0
            except Exception as exc:  # noqa: BLE001 - whatever failed, nothing was acked: start again
                self.failures += 1
                delay = backoff(self.failures)
                log.warning("%s: %s; unacknowledged messages go back to the queue, reconnecting in %.1fs",
                            self.name, exc or type(exc).__name__, delay)
                self.stopping.wait(delay)
            finally:
                self.buffer, self.buffered = [], 0
                self.incoming.clear()         # their delivery tags died with the channel
                self.handler.on_reset()

    def _consume(self) -> None:
        import pika

        from harewatch.broker.frames import DeliveryReader

        if self.on_connect is not None:
            self.on_connect()
        conn = pika.BlockingConnection(self.parameters())
        try:
            ch = conn.channel()
            ch.basic_qos(prefetch_count=self.prefetch)
            self.channel = ch
            tags = {ch.basic_consume(q, functools.partial(self._on_message, q)): q for q in self.queues}
            self.reader = DeliveryReader(conn, ch, tags, self.incoming.append) \
                if DeliveryReader.supported(conn, ch) else None
            if self.reader is not None:
                self.reader.install()
            log.info("%s consuming %s", self.name, ", ".join(self.queues))
            next_tick = time.monotonic() + self.tick
            while not self.stopping.is_set():
                now = time.monotonic()
                wait = next_tick - now
                if self.buffer:
                    wait = min(wait, self.first_at + self.max_wait - now)
                conn.process_data_events(time_limit=max(0.0, wait))
                if self.incoming:
                    self._take()
                now = time.monotonic()
                if self.buffer and now - self.first_at >= self.max_wait:
                    self._handle()
                if now >= next_tick:
                    self.handler.on_tick(self)
                    next_tick = time.monotonic() + self.tick
            if self.incoming:
                self._take()
            if self.buffer:
                self._handle()
            self.handler.on_stop(self)      # the last chance to settle what was handled
        finally:
            self.channel = None
            try:
                if conn.is_open:
                    conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass

    def _handle(self) -> None:
        batch, self.buffer, self.buffered = self.buffer, [], 0
        self.handler.on_batch(self, batch)

    def _on_message(self, queue: str, _ch: Any, method: Any, props: Any, body: bytes) -> None:
        """A delivery through pika's own path (what :class:`DeliveryReader` leaves to it)."""
        ts = props.timestamp
        self.incoming.append(Delivery(method.delivery_tag, body, queue, method.exchange, method.routing_key,
                                      props.content_type, props.headers or NO_HEADERS, float(ts) if ts else None,
                                      method.redelivered))

    def _take(self) -> None:
        """Batch what arrived, in the broker's order (delivery tags: a delivery pika assembled may come
        after later ones read directly), handing over each batch that is full."""
        got, self.incoming[:] = sorted(self.incoming, key=_tag), []
        if not self.buffer:
            self.first_at = time.monotonic()
        for d in got:
            self.buffer.append(d)
            self.buffered += len(d.body)
            if len(self.buffer) >= self.max_batch or (self.max_bytes is not None and self.buffered >= self.max_bytes):
                self._handle()
                self.first_at = time.monotonic()


def _tag(d: Delivery) -> int:
    return d.tag


def backoff(failures: int) -> float:
    """Seconds to wait after ``failures`` failures in a row: 0.5 s, doubling, at most 30 s."""
    return min(30.0, 0.5 * 2 ** min(failures - 1, 6))


def run_in_thread(consumer: BatchConsumer) -> threading.Thread:
    """Start the consumer in a daemon thread named after it."""
    th = threading.Thread(target=consumer.run, name=f"harewatch-{consumer.name}", daemon=True)
    th.start()
    return th
