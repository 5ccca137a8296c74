"""The publishing client an application embeds.

>>> with Publisher("amqp://guest:guest@127.0.0.1:5672/%2F") as pub:   # doctest: +SKIP
...     pub.publish({"metric": "cpu_util", "value": 73.2, "labels": {"host": "web-01"}})

Every message is persistent, published ``mandatory`` and confirmed by the
broker before it counts as sent; a returned (unroutable) message raises
:class:`~harewatch.errors.UnroutableMessage`.  With ``batch_size > 1``
readings are buffered per metric and sent as one JSON array when the batch
is full, its byte bound is reached, it is older than ``linger`` seconds (checked
on each call), or on :meth:`flush` / :meth:`close` / leaving the ``with``
block.  A lost connection is re-opened with exponential backoff and the
unconfirmed messages are published again (at-least-once: the detector drops
duplicates); when the broker stays unreachable :class:`BrokerUnreachable`
is raised and nothing unconfirmed is counted as sent.

Thread-safety: one ``Publisher`` may be shared by threads; calls are
serialised by an internal lock (pika's blocking connection is not
thread-safe itself).  For parallel throughput give each thread its own.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any, Iterable, Mapping

import pika
import pika.exceptions as pex

from harewatch.errors import BrokerUnreachable, InvalidInput, UnroutableMessage
from harewatch.messages import Reading
from harewatch.settings import Settings, load_settings
from harewatch.messages import parse_json_reading

log = logging.getLogger("harewatch.publisher")

_CONN_ERRORS = (pex.AMQPConnectionError, pex.ConnectionClosed, pex.ChannelClosed, pex.StreamLostError,
                pex.ChannelWrongStateError, ConnectionError, OSError)


def as_reading(item: Reading | Mapping[str, Any]) -> Reading:
    """A Reading from a Reading or a dict of the DESIGN §2 shape (``ts`` defaults to now)."""
    if isinstance(item, Reading):
        return item
    return parse_json_reading(dict(item), default_ts=time.time())


class Publisher:
    """Publishes readings to the ``readings`` exchange with confirms, batching and reconnection."""

    def __init__(self, url: str | None = None, *, settings: Settings | None = None, exchange: str | None = None,
                 batch_size: int = 1, batch_bytes: int = 256 * 1024, linger: float = 1.0,
                 connect_attempts: int = 6, max_backoff: float = 10.0, mandatory: bool = True,
                 client_name: str = "harewatch-publisher") -> None:
        self.settings = settings or (load_settings(amqp_url=url) if url else load_settings())
        from harewatch.broker.topology import Names
        self.exchange = exchange if exchange is not None else Names(self.settings.prefix).readings
        self.batch_size = max(1, batch_size)
        self.batch_bytes = batch_bytes
        self.linger = linger
        self.connect_attempts = connect_attempts
        self.max_backoff = max_backoff
        self.mandatory = mandatory
        self.client_name = client_name
        self._lock = threading.RLock()
        self._conn: pika.BlockingConnection | None = None
        self._ch: Any = None
        self._buffers: dict[str, list[str]] = {}      # routing key -> encoded readings
        self._sources: dict[str, set[str]] = {}
        self._buffer_sizes: dict[str, int] = {}
        self._oldest: dict[str, float] = {}
        self.sent_messages = 0
        self.sent_readings = 0
        self.reconnects = 0

    # -- connection ----------------------------------------------------------
    def _connect(self) -> None:
        from harewatch.broker.connection import pika_parameters, redact_url
        delay = 0.2
        last: Exception | None = None
        for attempt in range(1, self.connect_attempts + 1):
            try:
                params = pika_parameters(self.settings, client_properties={"connection_name": self.client_name},
                                         blocked_connection_timeout=60, socket_timeout=10, heartbeat=30)
                self._conn = pika.BlockingConnection(params)
                self._ch = self._conn.channel()
                self._ch.confirm_delivery()
                return
            except (pex.AMQPError, OSError) as exc:
                last = exc
                if attempt == self.connect_attempts:
                    break
                log.warning("broker unreachable (attempt %d/%d): %s; retrying in %.1fs",
                            attempt, self.connect_attempts, exc, delay)
                time.sleep(delay * (1 + random.random() * 0.2))
                delay = min(delay * 2, self.max_backoff)
        raise BrokerUnreachable(f"cannot publish: RabbitMQ at {redact_url(self.settings.amqp_url)} unreachable "
                                f"after {self.connect_attempts} attempts: {last!r}")

    def _ensure(self) -> None:
        if self._conn is None or not self._conn.is_open or self._ch is None or not self._ch.is_open:
            self._drop()
            self._connect()

    def _drop(self) -> None:
        try:
            if self._conn is not None and self._conn.is_open:
                self._conn.close()
        except Exception:  # noqa: BLE001 - closing a broken connection
            pass
        self._conn, self._ch = None, None

    def _send(self, routing_key: str, body: bytes, n: int, headers: Mapping[str, Any] | None = None) -> None:
        """Publish one message and wait for its confirm, reconnecting and republishing if the link breaks."""
        props = pika.BasicProperties(delivery_mode=2, content_type="application/json",
                                     timestamp=int(time.time()), headers=dict(headers) if headers else None)
        while True:
            self._ensure()
            try:
                self._ch.basic_publish(self.exchange, routing_key, body, props, mandatory=self.mandatory)
                break
            except pex.UnroutableError:
                raise UnroutableMessage(f"no queue bound for routing key {routing_key!r} on exchange "
                                        f"{self.exchange!r} (declare the topology)", routing_key, body) from None
            except pex.NackError:
                log.warning("broker nacked a message to %s; publishing it again", routing_key)
                time.sleep(0.1)
            except pex.ChannelClosedByBroker as exc:
                if exc.reply_code == 404:
                    self._drop()
                    raise UnroutableMessage(f"exchange {self.exchange!r} does not exist (run harewatch topology "
                                            "declare)", routing_key, body) from None
                self._drop()
                self.reconnects += 1
            except _CONN_ERRORS as exc:
                log.warning("connection lost while publishing (%s); reconnecting", exc)
                self._drop()
                self.reconnects += 1
        self.sent_messages += 1
        self.sent_readings += n

    # -- API -------------------------------------------------------------------
    def connect(self) -> "Publisher":
        """Connect now (else on first publish); raises BrokerUnreachable when the broker stays down."""
        with self._lock:
            self._ensure()
        return self

    def publish(self, item: Reading | Mapping[str, Any] | Iterable[Reading | Mapping[str, Any]],
                routing_key: str | None = None) -> int:
        """Publish one reading or many; returns how many readings were confirmed by this call.

        With batching, readings may wait in the buffer (returned count 0) until
        a bound is reached; :meth:`flush` sends them.
        """
        if isinstance(item, (Reading, Mapping)):
            items = [as_reading(item)]
        else:
            items = [as_reading(i) for i in item]
        with self._lock:
            before = self.sent_readings
            if self.batch_size == 1:
                for r in items:
                    self._send(routing_key or r.routing_key(), r.to_json().encode(), 1)
                return self.sent_readings - before
            for r in items:
                key = routing_key or f"{r.metric}.batch"
                buf = self._buffers.get(key)
                if buf is None:
                    buf = self._buffers[key] = []
                    self._sources[key] = set()
                    self._oldest[key] = time.monotonic()
                    self._buffer_sizes[key] = 2
                text = r.to_json()                      # encoded once
                buf.append(text)
                self._sources[key].add(r.routing_key())
                self._buffer_sizes[key] += len(text) + 1
                if len(buf) >= self.batch_size or self._buffer_sizes[key] >= self.batch_bytes:
                    self._flush_key(key)
            now = time.monotonic()
            for key in [k for k, t in self._oldest.items() if now - t >= self.linger]:
                self._flush_key(key)
            return self.sent_readings - before

    def _flush_key(self, key: str) -> None:
        buf = self._buffers.pop(key, [])
        src = self._sources.pop(key, set())
        self._oldest.pop(key, None)
        self._buffer_sizes.pop(key, None)
        if buf:
            # one source: its own key (<metric>.<host>); several: <metric>.batch
            rk = src.pop() if len(src) == 1 and key.endswith(".batch") else key
            body = buf[0] if len(buf) == 1 else "[" + ",".join(buf) + "]"
            self._send(rk, body.encode(), len(buf))

    def flush(self) -> int:
        """Send every buffered reading now; returns how many were confirmed."""
        with self._lock:
            before = self.sent_readings
            for key in list(self._buffers):
                self._flush_key(key)
            return self.sent_readings - before

    @property
    def pending(self) -> int:
        """Readings buffered and not yet confirmed."""
        return sum(len(b) for b in self._buffers.values())

    def close(self) -> None:
        """Flush, then close the connection."""
        with self._lock:
            try:
                self.flush()
            finally:
                self._drop()

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._drop()


__all__ = ["Publisher", "as_reading", "InvalidInput"]
