"""Reading deliveries straight off the wire: AMQP 0-9-1 ``basic.deliver`` frames decoded in one pass.

pika decodes every frame into objects (a method, a header with its properties,
a body), trims its input buffer by copying it after each frame, and looks up
callbacks by name on the way: about 20 us a message on this machine, as much
as scoring the reading it carries. A consumer of small messages (collectd and
most hand-written clients send one reading per message) spends half its time
there. :class:`DeliveryReader` takes over a pika connection's input: a
``basic.deliver`` on the consumer's channel whose header and body frames are
all in the buffer is decoded at once into a :class:`Delivery`; every other
frame (heartbeats, replies, a channel or connection close, a message split by
a frame of another channel) goes to pika as it would have, so pika keeps the
connection, its heartbeats and its errors. Ordering is by delivery tag.
"""
from __future__ import annotations

import struct
from typing import Any, Callable, Mapping

from harewatch.broker.consume import NO_HEADERS, Delivery

FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_END = 1, 2, 3, 0xCE
DELIVER = (60 << 16) | 60                 # basic.deliver: class 60, method 60
RECV_BYTES = 256 * 1024                   # bytes read from the socket at once (pika: 4 KB)

_HEAD = struct.Struct(">BHI")             # frame type, channel, payload size
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_CONTENT = struct.Struct(">HHQH")         # class, weight, body size, property flags

# basic property flags, in wire order, and how each is encoded (pika decodes the rest: headers, a table)
_CONTENT_TYPE, _HEADERS, _TIMESTAMP, _MORE_FLAGS = 0x8000, 0x2000, 0x0040, 0x0001
_SHORTSTR_FLAGS = {0x8000, 0x4000, 0x0400, 0x0200, 0x0100, 0x0080, 0x0020, 0x0010, 0x0008, 0x0004}
_OCTET_FLAGS = {0x1000, 0x0800}
_ORDER = (0x8000, 0x4000, 0x2000, 0x1000, 0x0800, 0x0400, 0x0200, 0x0100, 0x0080, 0x0040, 0x0020, 0x0010, 0x0008,
          0x0004)
_LAYOUTS: dict[int, tuple[int, ...]] = {}   # property flags -> the properties present, in wire order


class DeliveryReader:
    """Takes a pika (blocking) connection's input; ``basic.deliver`` messages on ``channel`` for the
    consumer tags in ``queues`` (tag -> queue) go to ``sink`` as :class:`Delivery` values.

    Installed with :meth:`install` once the consumers are registered; anything it does not recognise
    (or a delivery while pika is mid-way through assembling one) is handed to pika frame by frame, so
    the slow path still works, and is exercised whenever a frame of another channel splits a message.
    """

    def __init__(self, connection: Any, channel: Any, queues: Mapping[str, str],
                 sink: Callable[[Delivery], None]) -> None:
        self.blocking = connection
        self.impl = connection._impl
        self.channel_number: int = channel.channel_number
        self.assembler = channel._impl._content_assembler
        self.queues = dict(queues)
        self.sink = sink
        self.buffer = b""
        self.direct = 0           # deliveries decoded here (the rest went through pika)

    @staticmethod
    def supported(connection: Any, channel: Any) -> bool:
        """The pika internals this relies on are there (else the consumer stays on pika's own path)."""
        impl = getattr(connection, "_impl", None)
        return (impl is not None and hasattr(impl, "_on_data_available") and hasattr(impl, "_process_frame")
                and hasattr(impl, "bytes_received") and hasattr(impl, "frames_received")
                and isinstance(getattr(impl, "_frame_buffer", None), bytes)
                and hasattr(getattr(channel, "_impl", None), "_content_assembler")
                and hasattr(connection, "_request_channel_dispatch"))

    def install(self) -> None:
        """Route the connection's input through :meth:`feed` and read bigger chunks from the socket."""
        self.buffer, self.impl._frame_buffer = self.impl._frame_buffer, b""   # a frame pika began reading
        self.impl._on_data_available = self.feed
        transport = getattr(self.impl, "_transport", None)
        if transport is not None and hasattr(transport, "_MAX_RECV_BYTES"):
            transport._MAX_RECV_BYTES = RECV_BYTES

    def feed(self, data: bytes) -> None:
        """Decode what ``data`` completes; keep the rest for the next call."""
        from pika import frame as pika_frame

        buf = self.buffer + data if self.buffer else data
        n = len(buf)
        pos = 0
        got = 0
        impl = self.impl
        ch = self.channel_number
        while n - pos >= 8:
            ftype, chan, size = _HEAD.unpack_from(buf, pos)
            end = pos + 8 + size
            if end > n:
                break
            if (ftype == FRAME_METHOD and chan == ch and size >= 4 and _U32.unpack_from(buf, pos + 7)[0] == DELIVER
                    and self.assembler._method_frame is None):
                done = self._deliver(buf, pos, end)
                if done == 0:
                    break                       # the rest of the message has not arrived yet
                if done > 0:
                    impl.bytes_received += done - pos
                    pos = done
                    got += 1
                    continue
                # else: not one we can take whole (split by another channel's frame, unknown consumer): pika's
            if buf[end - 1] != FRAME_END:
                from pika.exceptions import InvalidFrameError
                raise InvalidFrameError("Invalid FRAME_END marker")
            _, value = pika_frame.decode_frame(buf[pos:end])
            impl.bytes_received += end - pos
            pos = end
            impl._process_frame(value)
        self.buffer = buf[pos:] if pos < n else b""
        if got:
            self.direct += got
            self.blocking._request_channel_dispatch(ch)   # process_data_events returns now, as for pika's own

    def _deliver(self, buf: bytes, pos: int, end: int) -> int:
        """Decode the message starting with the method frame at ``pos`` (ending at ``end``): the position
        after its last frame; 0 if it is not all here yet; -1 if it is not one to take here."""
        p = pos + 11
        ln = buf[p]
        tag_name = buf[p + 1:p + 1 + ln].decode()
        queue = self.queues.get(tag_name)
        if queue is None:
            return -1
        p += 1 + ln
        delivery_tag = _U64.unpack_from(buf, p)[0]
        redelivered = bool(buf[p + 8] & 1)
        p += 9
        ln = buf[p]
        exchange = buf[p + 1:p + 1 + ln].decode()
        p += 1 + ln
        ln = buf[p]
        routing_key = buf[p + 1:p + 1 + ln].decode()
        if buf[end - 1] != FRAME_END:
            return -1
        # the content header: the next frame, on the same channel
        h = end
        hend = self._frame_at(buf, h, FRAME_HEADER)
        if hend <= 0:
            return hend
        _cls, _w, body_size, flags = _CONTENT.unpack_from(buf, h + 7)
        content_type, headers, timestamp = self._properties(buf, h + 7, h + 21, flags, hend - 1)
        # the body: frames on the same channel until body_size bytes
        parts: list[bytes] = []
        b = hend
        seen = 0
        while seen < body_size:
            bend = self._frame_at(buf, b, FRAME_BODY)
            if bend <= 0:
                return bend
            parts.append(buf[b + 7:bend - 1])
            seen += bend - b - 8
            b = bend
        body = parts[0] if len(parts) == 1 else b"".join(parts)   # no part: an empty body
        self.impl.frames_received += 2 + len(parts)
        self.sink(Delivery(delivery_tag, body, queue, exchange, routing_key, content_type, headers, timestamp,
                           redelivered))
        return b

    def _frame_at(self, buf: bytes, pos: int, ftype: int) -> int:
        """The end of the frame at ``pos`` if it is whole and of type ``ftype`` on the consumer's channel;
        0 if it has not all arrived; -1 if it is another frame."""
        if len(buf) - pos < 8:
            return 0
        got, chan, size = _HEAD.unpack_from(buf, pos)
        if got != ftype or chan != self.channel_number:
            return -1
        end = pos + 8 + size
        if end > len(buf):
            return 0
        return end if buf[end - 1] == FRAME_END else -1

    @staticmethod
    def _properties(buf: bytes, start: int, p: int, flags: int, stop: int
                    ) -> tuple[str | None, Mapping[str, Any], float | None]:
        """content_type, headers and timestamp of a content header's property list (from ``p``)."""
        if flags & (_HEADERS | _MORE_FLAGS):
            from pika import spec
            props = spec.BasicProperties()
            props.decode(buf[start + 12:stop])
            ts = props.timestamp
            return props.content_type, props.headers or NO_HEADERS, float(ts) if ts else None
        content_type = None
        timestamp = None
        layout = _LAYOUTS.get(flags)
        if layout is None:
            layout = _LAYOUTS[flags] = tuple(f for f in _ORDER if flags & f)
        for f in layout:
            if f in _SHORTSTR_FLAGS:
                ln = buf[p]
                if f == _CONTENT_TYPE:
                    content_type = buf[p + 1:p + 1 + ln].decode()
                p += 1 + ln
            elif f in _OCTET_FLAGS:
                p += 1
            else:   # the timestamp
                ts = _U64.unpack_from(buf, p)[0]
                timestamp = float(ts) if ts else None
                p += 8
        return content_type, NO_HEADERS, timestamp
