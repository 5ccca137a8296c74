"""Publishing with publisher confirms, many messages in flight at once.

A publish that waits for its own confirm costs a broker round trip (and, on a
quorum queue, a Raft commit) per message: about 1.5 ms here, so 400
notifications of one flush take 0.6 s. :class:`ConfirmedPublisher` sends a
whole batch, then waits once until the broker confirmed every message of it;
a nack, a closed channel or a timeout raises, and the caller acts as if nothing
of the batch was sent (it is published again, with the same ids).

Every message is published ``mandatory``: a confirm only says the broker took
a message, and one that no queue is bound for is confirmed and dropped. Such a
message comes back (``basic.return``, before its confirm) and the batch raises
:class:`~harewatch.errors.UnroutableMessage`, so an anomaly whose exchange was
declared anew without its bindings is held, not lost.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from harewatch.errors import PublishNotConfirmed, UnroutableMessage
from harewatch.settings import Settings


@dataclass(frozen=True)
class OutMessage:
    """One message to publish: where, the body, and its AMQP properties (``headers`` among them)."""

    exchange: str
    routing_key: str
    body: bytes
    properties: Mapping[str, Any] = field(default_factory=dict)


class ConfirmedPublisher:
    """A connection and a channel in confirm mode, of its own; not thread-safe (one per thread)."""

    def __init__(self, settings: Settings, timeout: float = 30.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self.conn: Any = None
        self.channel: Any = None
        self.published = 0          # the channel's last publish sequence number
        self.unconfirmed: set[int] = set()
        self.nacked = 0
        self.returned: list[tuple[str, str, bytes]] = []   # (exchange, routing key, body) of messages that came back

    def _open(self) -> None:
        from harewatch.broker.connection import kombu_connection

        conn = kombu_connection(self.settings)
        conn.connect()
        raw = conn.connection
        ch = raw.channel()
        ch.confirm_select()
        ch.events["basic_ack"].add(self._on_ack)
        ch.events["basic_nack"].add(self._on_nack)
        ch.events["basic_return"].add(self._on_return)
        self.conn, self.channel = conn, ch
        self.published, self.unconfirmed, self.nacked, self.returned = 0, set(), 0, []

    def _on_ack(self, tag: int, multiple: bool) -> None:
        if multiple:
            self.unconfirmed = {t for t in self.unconfirmed if t > tag}
        else:
            self.unconfirmed.discard(tag)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        before = len(self.unconfirmed)
        self._on_ack(tag, multiple)
        self.nacked += before - len(self.unconfirmed)

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        body = message.body
        self.returned.append((exchange, routing_key, body.encode() if isinstance(body, str) else bytes(body)))

    def publish(self, messages: Sequence[OutMessage]) -> None:
        """Publish every message (persistent unless a ``delivery_mode`` says otherwise) and return once
        the broker confirmed them all; raise :class:`PublishNotConfirmed`, :class:`UnroutableMessage` (no queue
        is bound for one of them) or a connection error if not."""
        if not messages:
            return
        from amqp import Message

        try:
            if self.channel is None:
                self._open()
            for m in messages:
                props = dict(m.properties)
                headers = props.pop("headers", None)
                props.setdefault("delivery_mode", 2)
                msg = Message(m.body, application_headers=headers or None, **props)
                self.channel.basic_publish(msg, exchange=m.exchange, routing_key=m.routing_key, mandatory=True)
                self.published += 1
                self.unconfirmed.add(self.published)
            deadline = time.monotonic() + self.timeout
            while self.unconfirmed:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PublishNotConfirmed(f"{len(self.unconfirmed)} of {len(messages)} messages not confirmed "
                                              f"by the broker within {self.timeout:.0f}s")
                try:
                    self.conn.connection.drain_events(timeout=min(left, 1.0))
                except TimeoutError:
                    continue
                except OSError as exc:
                    if "timed out" in str(exc):
                        continue
                    raise
            if self.nacked:
                raise PublishNotConfirmed(f"the broker refused {self.nacked} of {len(messages)} messages (nack)")
            if self.returned:
                exchange, key, _ = self.returned[0]
                raise UnroutableMessage(f"{len(self.returned)} of {len(messages)} messages came back unrouted: "
                                        f"no queue is bound to exchange {exchange!r} for routing key {key!r} "
                                        f"(run `harewatch topology declare`)", key,
                                        returned=returned_positions(messages, self.returned))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        conn, self.conn, self.channel = self.conn, None, None
        if conn is not None:
            try:
                conn.release()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass


def returned_positions(messages: Sequence[OutMessage], returned: Sequence[tuple[str, str, bytes]]) -> tuple[int, ...]:
    """Where in ``messages`` the returned ones were: a return names no publish sequence number, so each is
    matched, in order, to the first message of the same exchange, routing key and body not yet matched
    (identical messages are interchangeable)."""
    left: dict[tuple[str, str, bytes], list[int]] = {}
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        left.setdefault((m.exchange, m.routing_key, m.body), []).append(i)
    out = []
    for r in returned:
        slots = left.get(r)
        if slots:
            out.append(slots.pop())
    return tuple(sorted(out))
