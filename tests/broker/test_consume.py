"""The batch consumer reads deliveries straight off the wire: every message once, in order, as published."""
from __future__ import annotations

import threading
from typing import Any

import pika
import pytest
from pika import frame, spec

from harewatch.broker.connection import pika_parameters
from harewatch.broker.consume import BatchConsumer, Delivery

pytestmark = pytest.mark.broker


class Collect:
    """A handler that acknowledges each batch and stops the consumer after ``want`` messages."""

    def __init__(self, want: int, ack: bool = True) -> None:
        self.want, self.ack = want, ack
        self.got: list[Delivery] = []
        self.done = threading.Event()

    def on_batch(self, consumer: BatchConsumer, batch: list[Delivery]) -> None:
        self.got.extend(batch)
        if self.ack:
            consumer.ack_through(batch[-1].tag)
        if len(self.got) >= self.want:
            self.done.set()
            consumer.stop()

    def on_tick(self, consumer: BatchConsumer) -> None:
        pass

    def on_stop(self, consumer: BatchConsumer) -> None:
        pass

    def on_reset(self) -> None:
        pass


def consume(settings: Any, queue: str, want: int, ack: bool = True, **kw: Any) -> tuple[Collect, BatchConsumer]:
    h = Collect(want, ack)
    c = BatchConsumer(lambda: pika_parameters(settings), [queue], h, **kw)
    th = threading.Thread(target=c.run, daemon=True)
    th.start()
    assert h.done.wait(60), f"{len(h.got)} of {want} messages consumed"
    th.join(30)
    return h, c


def test_every_message_arrives_once_in_order_with_its_properties(settings, pika_channel):
    ch = pika_channel
    ch.queue_declare("readings.in", durable=True, arguments={"x-queue-type": "quorum"})
    ch.confirm_delivery()
    # empty, tiny, bigger than a frame (several body frames), with and without each property the engine reads
    bodies = [b"", b"x", b"y" * 300_000] + [b'{"metric":"cpu","value":%d}' % i for i in range(2000)]
    sent = []
    for i, body in enumerate(bodies):
        props = pika.BasicProperties(content_type="application/json" if i % 2 else None, delivery_mode=2,
                                     timestamp=1_700_000_000 + i if i % 3 else None,
                                     headers={"source": "test", "n": i} if i % 7 == 0 else None,
                                     message_id=f"m{i}" if i % 4 == 0 else None, priority=1 if i % 11 == 0 else None)
        ch.basic_publish("", "readings.in", body, props)
        sent.append((body, props.content_type, props.headers or {}, float(props.timestamp or 0) or None))
    h, c = consume(settings, "readings.in", len(bodies), max_batch=300, max_bytes=32 * 1024)
    assert [(d.body, d.content_type, dict(d.headers), d.timestamp) for d in h.got] == sent
    assert [d.tag for d in h.got] == sorted(d.tag for d in h.got)
    assert {(d.queue, d.exchange, d.routing_key, d.redelivered) for d in h.got} == {("readings.in", "", "readings.in",
                                                                                     False)}
    # the point of the reader: pika's frame-by-frame path was not what carried them
    assert c.reader is not None and c.reader.direct >= len(bodies) - 50


def test_unacknowledged_messages_come_back_marked_redelivered(settings, pika_channel):
    ch = pika_channel
    ch.queue_declare("readings.in", durable=True, arguments={"x-queue-type": "quorum"})
    ch.confirm_delivery()
    for i in range(20):
        ch.basic_publish("", "readings.in", b"%d" % i, pika.BasicProperties(delivery_mode=2))
    first, _ = consume(settings, "readings.in", 20, ack=False)
    assert not any(d.redelivered for d in first.got)
    again, _ = consume(settings, "readings.in", 20)
    assert [d.body for d in again.got] == [b"%d" % i for i in range(20)]
    assert all(d.redelivered for d in again.got)


def test_a_message_split_by_another_channels_frame_goes_through_pika_in_order(settings, pika_channel):
    """A heartbeat between a message's frames (allowed by the protocol) hands that message to pika's own
    assembly; the messages around it are still read directly, and all come out in delivery-tag order."""
    ch = pika_channel
    ch.queue_declare("readings.in", durable=True, arguments={"x-queue-type": "quorum"})
    h = Collect(3, ack=False)
    c = BatchConsumer(lambda: pika_parameters(settings), ["readings.in"], h, max_wait=0.0)
    conn = pika.BlockingConnection(pika_parameters(settings))
    try:
        cch = conn.channel()
        tag = cch.basic_consume("readings.in", lambda *a: c._on_message("readings.in", *a))
        from harewatch.broker.frames import DeliveryReader
        reader = DeliveryReader(conn, cch, {tag: "readings.in"}, c.incoming.append)
        reader.install()
        n = cch.channel_number

        def message(dtag: int, body: bytes) -> list[bytes]:
            props = spec.BasicProperties(content_type="text/plain", timestamp=1_700_000_000 + dtag)
            return [frame.Method(n, spec.Basic.Deliver(tag, dtag, False, "readings", "cpu.a")).marshal(),
                    frame.Header(n, len(body), props).marshal(), frame.Body(n, body).marshal()]

        one, two, three = message(1, b"one"), message(2, b"two"), message(3, b"three")
        split = [two[0], frame.Heartbeat().marshal(), two[1], two[2]]
        wire = b"".join(one + split + three)
        reader.feed(wire[:40])               # and arriving in pieces, cut anywhere
        reader.feed(wire[40:])
        conn.process_data_events(time_limit=0)   # pika dispatches the one it assembled
        c._take()
        c._handle()
    finally:
        conn.close()
    assert [(d.tag, d.body, d.content_type, d.timestamp, d.routing_key, d.exchange) for d in h.got] == [
        (1, b"one", "text/plain", 1_700_000_001.0, "cpu.a", "readings"),
        (2, b"two", "text/plain", 1_700_000_002.0, "cpu.a", "readings"),
        (3, b"three", "text/plain", 1_700_000_003.0, "cpu.a", "readings")]
    assert reader.direct == 2
